"""RL from verifiable rewards: the built-in reward functions, the rlvr_math recipe on a tiny causal LM, user reward
functions behind consent, the data checks, the dry run and the estimate without a reward model."""

import json
from pathlib import Path

import pytest

from tests.conftest import check_resources

from adaptkit.methods.preference.rewards import final_answer, final_number, make

ROOT = Path(__file__).parent.parent
QUICK = ["rlhf.policy.max_steps=3", "rlhf.policy.eval_prompts=4", "rlhf.policy.max_completion_length=12",
         "rlhf.policy.batch_size=4", "data.max_rows=24", "training.max_length=96"]


def score(name, completions, **settings):
    columns = settings.pop("columns", {})
    return make(name, **settings)(prompts=[""] * len(completions), completions=completions, **columns)


def test_final_answers_are_read_the_way_a_grader_reads_them():
    assert final_answer("3 + 4 is 7\n#### 7\n") == "7"
    assert final_answer("Paris.\nThe answer: Paris") == "Paris"
    assert final_number("35 + 43 = 78 shells") == 78.0
    assert final_number("first 12, then #### 1,250 dollars") == 1250.0
    assert final_number("no digits here") is None


def test_builtin_rewards_score_what_they_say():
    answers = {"answer": ["78", "12", "5"]}
    assert score("numeric", ["so #### 78", "answer: 12.0000001", "it is 6"], columns=answers, tolerance=1e-6) == [1.0, 1.0, 0.0]
    assert score("exact_match", ["#### 78", "Answer: twelve", "5."], columns=answers) == [1.0, 0.0, 1.0]
    assert score("regex", ["work\n#### 78", "78"], pattern=r"^#### \d+$") == [1.0, 0.0]
    assert score("json_valid", ['{"a": 1}', '```json\n[1, 2]\n```', "{a: 1}"]) == [1.0, 1.0, 0.0]
    assert score("length_penalty", ["x" * 10, "x" * 15, "x" * 40], max_chars=10) == [0.0, -0.5, -1.0]
    conversational = [[{"role": "assistant", "content": "#### 78"}]]
    assert score("numeric", conversational, columns={"answer": ["78"]}) == [1.0]


def _digits_reward(folder: Path) -> str:
    (folder / "my_rewards.py").write_text(
        "def digits(prompts, completions, **columns):\n"
        "    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]\n")
    return f"{folder / 'my_rewards.py'}:digits"


def test_rlvr_trains_on_reward_functions_and_reports_correct_answers(invoke, tmp_path, tiny_causal_lm):
    user = _digits_reward(tmp_path)
    out = tmp_path / "rlvr"
    args = ["rlvr_math", f"model={tiny_causal_lm}", f"output_dir={out}", *QUICK,
            f"rlhf.reward_functions=[{{function: numeric}}, {{function: '{user}', weight: 2}}, {{function: length_penalty, max_chars: 20}}]"]
    refused = invoke("run", *args)
    assert refused.exit_code == 2 and "--allow-code" in refused.stderr and not out.exists()
    result = invoke("run", *args, "--allow-code", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics["train"]) == {"policy"}  # no reward model was trained
    check_resources(metrics)
    assert set(metrics["eval"]) == {"reward_before", "reward_after", "correct_before", "correct_after", "kl", "correct",
                                    "primary_metric", "base", "delta"}
    assert metrics["eval"]["primary_metric"] == "correct" and metrics["eval"]["base"]["correct"] == metrics["eval"]["correct_before"]
    assert 0 <= metrics["eval"]["correct_before"] <= 1 and 0 <= metrics["eval"]["correct_after"] <= 1
    steps = metrics["train"]["policy"]["reward_per_step"]
    assert [s["step"] for s in steps] == [1, 2, 3] and all(isinstance(s["reward"], float) for s in steps)
    assert metrics["train"]["policy"]["final_loss"] == metrics["train"]["policy"]["final_loss"]  # finite, not NaN
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert any("rewards/digits/mean" in row for row in log)  # TRL called the user's function by its name
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and {"correct_before", "correct_after", "scores_after"} <= set(samples[0])
    assert set(samples[0]["scores_after"]) == {"numeric", "digits", "length_penalty"}
    assert (out / "reward_curve.png").is_file() and not (out / "reward_model").exists()
    from peft import AutoPeftModelForCausalLM

    policy = AutoPeftModelForCausalLM.from_pretrained(out / "policy")
    lora_b = [p for n, p in policy.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.abs().sum()) > 0 for p in lora_b)  # the policy moved from its zero-initialised update


def test_reward_functions_have_no_reward_stage(invoke, tiny_causal_lm, tmp_path):
    result = invoke("run", "rlvr_math", f"model={tiny_causal_lm}", f"output_dir={tmp_path / 'x'}", "--stage", "reward")
    assert result.exit_code == 2 and "no reward model to train" in result.stderr


@pytest.mark.parametrize("rows, overrides, words", [
    ([{"prompt": "2+2?", "solution": "4"}], [], "column `answer` not found"),
    ([{"prompt": "2+2?", "answer": "four"}], [], "holds no number for the numeric reward"),
    ([{"prompt": "2+2?", "answer": "4"}], ["rlhf.reward_functions=[{function: regex}]"], "needs `pattern`"),
    ([{"prompt": "2+2?", "answer": "4"}], ["rlhf.reward_functions=[{function: regex, pattern: '(('}]"], "is not a regular expression"),
    ([{"prompt": "2+2?", "answer": "4"}], ["rlhf.reward_functions=[{function: exact}]"], "neither a built-in reward"),
    ([{"prompt": "2+2?", "answer": "4"}], ["rlhf.reward_model.epochs=2"], "one kind of reward"),
])
def test_bad_rlvr_input_fails_in_one_line(invoke, tmp_path, monkeypatch, rows, overrides, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = invoke("run", "rlvr_math", "data.train=p.jsonl", "data.eval=", "output_dir=out", *overrides)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_dry_run_shows_the_reward_functions_and_the_rollout_memory(invoke, tmp_path):
    user = _digits_reward(tmp_path)
    report = json.loads(invoke("run", "rlvr_math", f"rlhf.reward_functions=[{{function: numeric}}, {{function: '{user}'}}]",
                               "--dry-run", "--json").stdout)
    rewards = report["data"]["rewards"]
    assert rewards[0].startswith("1 x numeric(column='answer'") and "not imported (needs --allow-code)" in rewards[1]
    assert report["data"]["sample"]["answer"] == "78"
    memory = report["memory"]
    assert memory["breakdown"]["reward_model"] == 0 and memory["breakdown"]["kv_cache"] > 0
    assert "reward functions: no reward model" in memory["rollouts"] and "4 samples of 64 new tokens" in memory["rollouts"]
    allowed = json.loads(invoke("run", "rlvr_math", f"rlhf.reward_functions=[{{function: '{user}'}}]", "--dry-run", "--allow-code",
                                "--json").stdout)
    assert "imported" in allowed["data"]["rewards"][0] and "needs" not in allowed["data"]["rewards"][0]
    learned = json.loads(invoke("run", "rlhf", "--dry-run", "--json").stdout)["memory"]
    assert learned["peak_memory_gb"] > memory["peak_memory_gb"]  # the reward model is what verifiable rewards save


def test_demo_problems_are_checkable():
    rows = [json.loads(line) for line in (ROOT / "examples" / "data" / "arithmetic_train.jsonl").read_text().splitlines()]
    assert len(rows) >= 300 and len({r["prompt"] for r in rows}) == len(rows)
    assert len({r["operation"] for r in rows}) == 6
    worked = [f"working...\n#### {r['answer']}" for r in rows]
    assert score("numeric", worked, columns={"answer": [r["answer"] for r in rows]}) == [1.0] * len(rows)
