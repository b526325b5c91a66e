"""The wizard with the prompt layer replaced by a script."""

import json

import pytest

from adaptkit.cli import advise as advise_cli
from adaptkit.cli.wizard import QUESTIONS, run_wizard
from adaptkit.estimator.hardware import GPU

GPU_KEYS = {"num_gpus", "gpu_vram_gb", "model", "model_params_b", "tasks_to_serve"}


class Script:
    """Answers questions from a dict; records what was asked and the default shown."""

    def __init__(self, replies, fallback=True):
        self.replies, self.fallback, self.asked = dict(replies), fallback, {}

    def ask(self, question, default, back=False):
        self.asked[question.key] = default
        if question.key in self.replies:
            reply = self.replies[question.key]
            if isinstance(reply, BaseException) or (isinstance(reply, type) and issubclass(reply, BaseException)):
                raise reply
            return reply
        if not self.fallback:
            raise AssertionError(f"unexpected question {question.key}")
        return default if question.kind != "select" else question.choices[0][0]


def test_questions_cover_profile_fields():
    from adaptkit.advisor.profile import Profile

    keys = [q.key for q in QUESTIONS]
    assert len(keys) == len(set(keys)) and set(keys) <= set(Profile.model_fields)
    assert all(q.why for q in QUESTIONS)


def test_closed_api_skips_hardware_questions():
    script = Script({"task": "qa", "goal": "knowledge", "weight_access": "closed_api"})
    run_wizard({}, script, [GPU("A100", 80)])
    assert not GPU_KEYS & set(script.asked)
    assert "knowledge_changes_often" in script.asked and "preference_pairs" not in script.asked


def test_open_weights_default_to_detected_gpus():
    script = Script({"task": "classification", "goal": "behavior", "weight_access": "open", "model": "mistralai/Mistral-7B-v0.1"})
    answers = run_wizard({}, script, [GPU("NVIDIA L4", 24.0)] * 2)
    assert script.asked["num_gpus"] == 2 and script.asked["gpu_vram_gb"] == 24.0
    assert answers["num_gpus"] == 2 and answers["gpu_vram_gb"] == 24.0
    assert "model_params_b" not in script.asked  # read from the name


def test_no_gpu_skips_memory_question():
    script = Script({"task": "classification", "goal": "behavior", "weight_access": "open", "num_gpus": 0})
    run_wizard({}, script, [])
    assert "num_gpus" in script.asked and "gpu_vram_gb" not in script.asked


def test_alignment_asks_for_pairs_and_base_model():
    script = Script({"task": "chat", "goal": "alignment", "weight_access": "open", "preference_pairs": 20000})
    run_wizard({}, script, [])
    assert {"preference_pairs", "is_base_model", "online_labeling", "verifiable_reward"} <= set(script.asked)


def test_answers_file_fills_what_it_has():
    script = Script({}, fallback=True)
    run_wizard({"task": "qa", "goal": "knowledge", "weight_access": "closed_api", "labeled_examples": 10}, script, [])
    assert not {"task", "goal", "weight_access", "labeled_examples"} & set(script.asked)


def test_blank_optional_answer_stays_unknown():
    script = Script({"task": "qa", "goal": "knowledge", "weight_access": "open", "model": None, "model_params_b": None})
    answers = run_wizard({}, script, [])
    assert answers["model_params_b"] is None


@pytest.fixture
def wizard_cli(monkeypatch):
    """Make `adaptkit advise` believe it has a terminal and ask a Script."""

    def install(script):
        monkeypatch.setattr(advise_cli, "_interactive", lambda: True)
        monkeypatch.setattr(advise_cli, "_prompter", lambda: script)

    return install


def test_wizard_flow_end_to_end(invoke, wizard_cli, tmp_path):
    script = Script({"task": "generation", "goal": "behavior", "weight_access": "closed_api", "labeled_examples": 30})
    wizard_cli(script)
    saved = tmp_path / "answers.yaml"
    result = invoke("advise", "--json", "--save-answers", saved)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recommendations"][0]["method"] == "in_context_learning"
    replay = invoke("advise", "--answers", saved, "--json", "--no-input")
    assert json.loads(replay.stdout)["recommendations"] == json.loads(result.stdout)["recommendations"]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, EOFError])
def test_ctrl_c_and_eof_exit_130_and_write_nothing(invoke, wizard_cli, tmp_path, interrupt):
    wizard_cli(Script({"task": "qa", "goal": interrupt}))
    saved = tmp_path / "answers.yaml"
    result = invoke("advise", "--save-answers", saved)
    assert result.exit_code == 130
    assert "Traceback" not in result.output and "cancelled" in result.stderr
    assert not saved.exists()


def test_no_input_never_prompts(invoke, wizard_cli):
    wizard_cli(Script({}, fallback=False))
    result = invoke("advise", "--no-input", "--set", "task=qa")
    assert result.exit_code == 2 and "missing goal, weight_access" in result.stderr


@pytest.mark.parametrize("replies, asked, not_asked", [
    ({"task": "chat", "goal": "behavior", "weight_access": "closed_api", "inference_volume": "high", "api_model": None},
     {"api_model", "usd_per_1m_input_tokens", "usd_per_1m_output_tokens"}, {"num_gpus"}),
    ({"task": "chat", "goal": "behavior", "weight_access": "closed_api", "inference_volume": "high", "api_model": "gpt-4o-mini"},
     {"api_model"}, {"usd_per_1m_input_tokens"}),
    ({"task": "chat", "goal": "behavior", "weight_access": "closed_api", "inference_volume": "low"}, {"api_model"},
     {"usd_per_1m_input_tokens"}),
    ({"task": "qa", "goal": "knowledge", "weight_access": "open", "model": "acme/inhouse-7b", "corpus_tokens": 50_000, "num_gpus": 0},
     {"context_window_tokens"}, {"api_model"}),
    ({"task": "qa", "goal": "knowledge", "weight_access": "open", "model": "Qwen/Qwen2.5-7B-Instruct", "corpus_tokens": 50_000,
      "num_gpus": 0}, set(), {"context_window_tokens"}),
])
def test_prices_and_windows_are_asked_only_when_unknown(replies, asked, not_asked):
    script = Script(replies)
    run_wizard({}, script, [])
    assert asked <= set(script.asked) and not (not_asked & set(script.asked)), sorted(script.asked)


@pytest.mark.parametrize("replies, asked", [
    ({"task": "code", "goal": "behavior", "weight_access": "open", "labeled_examples": 500}, True),  # reference answers: RLVR
    ({"task": "classification", "goal": "behavior", "weight_access": "open", "labeled_examples": 500}, False),
    ({"task": "code", "goal": "behavior", "weight_access": "closed_api", "labeled_examples": 500}, False),
    ({"task": "code", "goal": "behavior", "weight_access": "open", "labeled_examples": 0}, False),
])
def test_checkable_answers_are_asked_where_rl_could_use_them(replies, asked):
    script = Script(replies)
    run_wizard({}, script, [])
    assert ("verifiable_reward" in script.asked) is asked


def test_a_failure_after_the_questions_keeps_the_answers(invoke, wizard_cli, tmp_path, monkeypatch):
    """Whatever fails after the wizard (here the recipe file: its folder is a file) leaves the answers in a file and
    says how to rerun from it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    wizard_cli(Script({"data": None, "task": "classification", "goal": "behavior", "weight_access": "open", "labeled_examples": 2000,
                       "model": "sentence-transformers/all-MiniLM-L6-v2", "num_gpus": 0}))
    result = invoke("advise", "--emit-recipe", "afile/r.yaml")
    assert result.exit_code == 2 and "afile" in result.stderr
    assert "rerun with `adaptkit advise --answers adaptkit-answers.yaml`" in result.stderr
    import yaml

    kept = yaml.safe_load((tmp_path / "adaptkit-answers.yaml").read_text())
    assert kept["task"] == "classification" and kept["labeled_examples"] == 2000


def test_the_wizard_carries_a_files_own_column_names_into_the_recipe(invoke, wizard_cli, tmp_path, monkeypatch):
    """A review,sentiment CSV given at the wizard's first question: its columns reach the recipe it writes."""
    from tests.test_own_data import reviews

    (tmp_path / "data").mkdir()
    reviews(tmp_path / "data" / "reviews.csv")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    wizard_cli(Script({"data": "../data/reviews.csv", "goal": "behavior", "weight_access": "open", "num_gpus": 0,
                       "model": "sentence-transformers/all-MiniLM-L6-v2", "force": True, "path": "../out/deep/w.yaml",
                       "train_data": None, "eval_data": None, "bake_off": False}))
    result = invoke("advise")
    assert result.exit_code == 0, result.output
    assert "text `review`, label `sentiment`" in result.stdout
    recipe = (tmp_path / "out" / "deep" / "w.yaml").read_text()
    assert "text_column: review" in recipe and "label_column: sentiment" in recipe and "../../data/reviews.csv" in recipe


def test_the_offer_of_a_recipe_says_what_run_does_with_it():
    """A trained method's recipe is trained by `adaptkit run`; a training-free one's is scored (ICL trains nothing)."""
    from adaptkit.cli.wizard import ask_recipe
    from adaptkit.methods.registry import registry

    class Offer(Script):
        def ask(self, question, default, back=False):
            self.hint = question.why
            return False

    for method, said in (("lora_adapters", "trains it"), ("in_context_learning", "scores it on your data")):
        offer = Offer({})
        assert ask_recipe(offer, registry()[method], lambda key, text: text) is None and said in offer.hint


def test_the_wizard_asks_which_column_is_which_when_the_names_do_not_say(invoke, wizard_cli, tmp_path, monkeypatch):
    """A transcript,note,agent CSV: advise --data could only refuse it; the wizard asks what the rows hold and which
    column is which, and the recipe it writes reads them so."""
    import csv

    monkeypatch.chdir(tmp_path)
    with open("calls.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["transcript", "note", "agent"])
        for i in range(40):
            writer.writerow([f"Hi, order {1000 + i} arrived broken, item {i % 7}. Please refund.", f"Order {1000 + i}: refund.",
                             ("ana", "li", "sam")[i % 3]])
    script = Script({"data": "calls.csv", "rows": "response", "input_column": "transcript", "response_column": "note",
                     "goal": "behavior", "weight_access": "open", "num_gpus": 0, "force": True, "path": "r.yaml", "train_data": None,
                     "eval_data": None, "bake_off": False})
    wizard_cli(script)
    result = invoke("advise")
    assert result.exit_code == 0, result.output
    assert script.asked["rows"] == "label"  # `agent` repeats three names: a label is the guess shown first
    assert "(columns `transcript` / `note`)" in result.stdout
    recipe = (tmp_path / "r.yaml").read_text()
    assert "prompt_column: transcript" in recipe and "response_column: note" in recipe


def test_the_column_questions_give_each_kind_its_answers():
    from adaptkit.cli.wizard import ask_columns

    rows = [{"a": f"text {i}", "b": f"other {i}", "c": ("x", "y")[i % 2]} for i in range(10)]
    ask = lambda replies: ask_columns(Script(replies), "f.csv", ["a", "b", "c"], rows)  # noqa: E731
    assert ask({"rows": "label"}) == {"text_column": "a", "label_column": "c"}  # the first offered: the input, the repeating column
    assert ask({"rows": "pair", "input_column": "a", "chosen_column": "b"}) == {"prompt_column": "a", "chosen_column": "b",
                                                                                "rejected_column": "c"}
    assert ask({"rows": "text", "text_column": "b"}) == {"text_column": "b"}
    two = ask_columns(Script({"rows": "response"}), "f.csv", ["a", "c"], rows)
    assert two == {"prompt_column": "a", "response_column": "c"}

    class Offered(Script):
        def ask(self, question, default, back=False):
            self.choices = {**getattr(self, "choices", {}), question.key: [value for value, _ in question.choices]}
            return super().ask(question, default, back)

    offered = Offered({})
    ask_columns(offered, "f.csv", ["a", "c"], rows)
    assert offered.asked["rows"] == "label" and "pair" not in offered.choices["rows"]  # a pair takes three columns


def test_the_column_questions_leave_out_the_image_column(tmp_path):
    """A folder of images with `ask` and `reply` beside them: the image column is known; the input is asked among
    the others."""
    import shutil
    from pathlib import Path

    from adaptkit.cli.wizard import named_columns

    root = Path(__file__).resolve().parents[1] / "examples" / "images"
    folder = tmp_path / "vqa"
    folder.mkdir()
    rows = [json.loads(line) for line in (root / "vqa_train.jsonl").read_text().splitlines()][:12]
    for row in rows:
        shutil.copy(root / row["image"], folder)
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": row["image"].split("/")[-1], "ask": row["question"],
                                                                "reply": row["answer"]}) + "\n" for row in rows))

    class Offered(Script):
        def ask(self, question, default, back=False):
            self.choices = {**getattr(self, "choices", {}), question.key: [value for value, _ in question.choices]}
            return super().ask(question, default, back)

    script = Offered({"rows": "response", "input_column": "ask", "response_column": "reply"})
    assert named_columns(script, str(folder), {}) == {"prompt_column": "ask", "response_column": "reply"}
    assert "image" not in script.choices["input_column"]
