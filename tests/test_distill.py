"""Distillation (`distill`): a scripted teacher endpoint on 127.0.0.1 answers the training prompts (cached, priced),
its answers are filtered by the task's scorer against the references, a tiny student trains on them, and the report
gives the teacher's score, the student's score and base, each one's cost per 1,000 requests, and the break-even."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers_http import ChatHandler, serving

ROOT = Path(__file__).parent.parent
DATA = ROOT / "examples" / "data"
ANSWERS = {row["prompt"]: row["response"] for path in ("instructions_train.jsonl", "instructions_eval.jsonl")
           for row in map(json.loads, (DATA / path).read_text(encoding="utf-8").splitlines())}


class Teacher(ChatHandler):
    """A strong teacher: the right answer for most prompts, a useless one for every fifth; it reports its usage."""

    asked: list = []
    usage = {"prompt_tokens": 60, "completion_tokens": 20}

    def answer(self, prompt: str) -> str:
        Teacher.asked.append(prompt)
        if sum(map(ord, prompt)) % 5 == 0:
            return "I cannot help with that."
        return ANSWERS.get(prompt, "no idea")


@pytest.fixture
def teacher_url():
    Teacher.asked = []
    with serving(Teacher) as url:
        yield url


def settings(url: str, tmp_path: Path, model) -> list[str]:
    return [f"model={model}", f"backend.base_url={url}", "backend.model=teacher-xl", "backend.api_key_env=",
            f"backend.cache_dir={tmp_path / 'cache'}", "distill.usd_per_1m_input_tokens=2.5", "distill.usd_per_1m_output_tokens=10",
            "distill.student_requests_per_second=20", "data.max_rows=40", "training.max_steps=6", "training.batch_size=8",
            "training.max_length=96", "training.learning_rate=0.003", "training.generate_eval=8", "training.max_new_tokens=8",
            "training.gradient_checkpointing=false"]


@pytest.mark.train
def test_the_student_learns_from_filtered_teacher_answers_and_the_break_even_is_reported(invoke, tmp_path, teacher_url, tiny_causal_lm):
    out = tmp_path / "student"
    result = invoke("run", "distill", f"output_dir={out}", *settings(teacher_url, tmp_path, tiny_causal_lm), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["distill"]
    answers = [json.loads(line) for line in (out / "teacher_answers.jsonl").read_text().splitlines()]
    assert len(answers) == 40 and report["teacher"]["training_answers"]["answers"] == 40
    refused = [a for a in answers if a["answer"] == "I cannot help with that."]
    assert refused and not any(a["kept"] for a in refused) and all(a["kept"] for a in answers if a not in refused)
    assert report["teacher"]["training_answers"]["kept"] == 40 - len(refused)
    assert report["teacher"]["training_answers"]["usd"] == pytest.approx(40 * (60 * 2.5 + 20 * 10) / 1e6)
    metric = report["metric"]
    assert metric == "rougeL" and report["teacher"][metric] > report["student"][metric]
    assert report["student"]["base"] is not None and report["teacher"]["eval_rows"] == 8
    assert report["teacher"]["usd_per_1k_requests"] == pytest.approx(1000 * (60 * 2.5 + 20 * 10) / 1e6)
    assert report["student"]["usd_per_1k_requests"] == pytest.approx(1000 / (3600 * 20), rel=1e-3)
    assert report["break_even_requests"] > 0 and "pays back" in report["break_even"] and "no substitute yet" in report["break_even"]
    asked = len(Teacher.asked)  # 40 training prompts and 8 eval prompts
    assert asked == 48
    again = invoke("run", "distill", f"output_dir={tmp_path / 'again'}", *settings(teacher_url, tmp_path, tiny_causal_lm), "--json")
    assert again.exit_code == 0 and len(Teacher.asked) == asked  # every answer came from the cache: nothing asked twice


def test_a_distill_recipe_needs_a_teacher_and_single_prompts(invoke):
    result = invoke("recipes", "validate", "distill", "backend.kind=local")
    assert result.exit_code == 2 and "`distill` needs a teacher" in result.output
    result = invoke("recipes", "validate", "distill", "data.messages_column=messages")
    assert result.exit_code == 2 and "unset data.messages_column" in result.output


def test_the_dry_run_says_where_the_teachers_key_goes(invoke):
    result = invoke("run", "distill", "backend.base_url=https://teacher.example.com/v1", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert any("the real run refuses" in line and "teacher.example.com" in line for line in json.loads(result.stdout)["code"])


@pytest.mark.train
def test_a_local_teacher_with_the_students_tokenizer_distills_by_gkd(invoke, tmp_path, tiny_causal_lm):
    out = tmp_path / "gkd"
    result = invoke("run", "distill", f"model={tiny_causal_lm}", f"distill.teacher_model={tiny_causal_lm}", "distill.objective=gkd",
                    "distill.min_score=", "distill.max_new_tokens=8", "backend.kind=local", "backend.base_url=", "data.max_rows=16",
                    "training.max_steps=3", "training.batch_size=4", "training.max_length=64", "training.generate_eval=4",
                    "training.max_new_tokens=4", "training.gradient_checkpointing=false", f"output_dir={out}", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    report = metrics["distill"]
    assert metrics["train"]["steps"] == 3 and report["teacher"]["model"] == str(tiny_causal_lm)
    assert report["teacher"]["usd_per_1k_requests"] is None and "local teacher" in report["teacher"]["price_basis"]
    assert (out / "adapter_model.safetensors").is_file()


def test_gkd_needs_a_local_teacher(invoke):
    result = invoke("recipes", "validate", "distill", "distill.objective=gkd")
    assert result.exit_code == 2 and "set distill.teacher_model" in result.output
