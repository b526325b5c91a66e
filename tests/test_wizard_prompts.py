"""The wizard's real prompts (questionary over a prompt_toolkit pipe): stepping back, the review step, and the
recipe step's checks at the prompt (an existing file name, a typo in a data path, a file without the columns)."""

import io
import shutil
from pathlib import Path

import pytest
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.vt100 import Vt100_Output

from adaptkit.cli import advise as advise_cli
from adaptkit.cli.wizard import BACK, DONE, QuestionaryPrompter, run_wizard

ROOT = Path(__file__).resolve().parents[1]
DOWN, CLEAR = "\x1b[B", "\x15"  # arrow down; Ctrl-U empties a prefilled text answer


@pytest.fixture
def terminal():
    """A prompter on a pipe; `screen()` is everything the prompts drew (messages, validation errors)."""
    with create_pipe_input() as pipe:
        screen = io.StringIO()
        output = Vt100_Output(screen, lambda: Size(rows=40, columns=120))
        yield pipe, QuestionaryPrompter(input=pipe, output=output), screen.getvalue


class Mixed:
    """Real prompts for the keys in `real`, scripted replies (or the default) for the rest."""

    def __init__(self, prompter, real, replies=None):
        self.prompter, self.real, self.replies, self.asked = prompter, set(real), dict(replies or {}), []

    def ask(self, question, default, back=False):
        self.asked.append(question.key)
        if question.key in self.real:
            return self.prompter.ask(question, default, back=back)
        if question.key in self.replies:
            return self.replies[question.key]
        return default if question.kind != "select" else question.choices[0][0]


CLOSED = {"task": "classification", "modality": "text", "goal": "behavior", "weight_access": "closed_api", "inference_volume": "low",
          "budget_usd": 100, "privacy_on_prem": False}


def test_back_returns_to_the_previous_question_with_its_answer(terminal):
    pipe, prompter, _ = terminal
    # labeled_examples: 50; then at the next question step back; the answer comes back prefilled: replace it with 2k
    pipe.send_text(CLEAR + "50\r" + DOWN + "\r" + CLEAR + "2k\r" + "\r" + "\r" + "\r")
    asked = []

    class Log:
        def ask(self, question, default, back=False):
            asked.append((question.key, default, back))
            return prompter.ask(question, default, back=back)

    answers = run_wizard(CLOSED, Log(), [])
    assert answers["labeled_examples"] == 2000
    assert asked[:4] == [("labeled_examples", 0, False), ("needs_actions_or_live_data", False, True),
                         ("labeled_examples", 50, False), ("needs_actions_or_live_data", False, True)]
    assert asked[-1][0] == "review"


def test_back_at_a_text_prompt(terminal):
    pipe, prompter, _ = terminal
    pipe.send_text(CLEAR + "<\r")
    from adaptkit.cli.wizard import QUESTIONS

    question = next(q for q in QUESTIONS if q.key == "budget_usd")
    assert prompter.ask(question, 500, back=True) == BACK


def test_review_changes_an_answer_and_drops_what_it_made_irrelevant(terminal):
    replies = {"task": "chat", "goal": "alignment", "weight_access": "open", "num_gpus": 0, "preference_pairs": 800,
               "feedback_labels": 0}
    script = Mixed(None, (), replies)
    picks = iter(["goal", DONE])
    script.replies["review"] = None

    def ask(question, default, back=False):
        if question.key == "review":
            script.asked.append("review")
            return next(picks)
        if question.key == "goal" and "review" in script.asked:
            return "behavior"
        return Mixed.ask(script, question, default, back)

    script.ask = ask
    answers = run_wizard({}, script, [])
    assert answers["goal"] == "behavior" and "preference_pairs" not in answers
    assert script.asked.count("review") == 2


def test_review_lists_every_answer(terminal):
    pipe, prompter, screen = terminal
    pipe.send_text("\r")  # the first choice: all correct
    from adaptkit.cli.wizard import review_question

    question = review_question({"task": "qa", "labeled_examples": 40, "needs_citations": True}, {"task"})
    assert prompter.ask(question, DONE) == DONE
    assert "task: qa  (given)" in screen() and "labeled_examples: 40" in screen() and "needs_citations: yes" in screen()


@pytest.fixture
def wizard_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(advise_cli, "_interactive", lambda: True)
    shutil.copy(ROOT / "examples/data/support_tickets_train.jsonl", tmp_path / "tickets.jsonl")
    return tmp_path


def _advise(invoke, prompter, keys, pipe, real):
    script = Mixed(prompter, real, {"bake_off": False, "data": None})
    advise_cli._prompter = lambda: script  # patched_prompter restores it
    pipe.send_text(keys)
    return invoke("advise", "--answers", ROOT / "examples/answers/support_tickets.yaml"), script


@pytest.fixture
def patched_prompter(monkeypatch):
    """Restores the prompter factory, and records what the data prompts refused (the message shown under the prompt)."""
    monkeypatch.setattr(advise_cli, "_prompter", advise_cli._prompter)
    refused, real = [], advise_cli._file_check

    def recording(*args):
        check = real(*args)

        def wrapped(key, text):
            try:
                return check(key, text)
            except ValueError as exc:
                refused.append((key, text, str(exc)))
                raise
        return wrapped
    monkeypatch.setattr(advise_cli, "_file_check", recording)
    return refused


def test_an_existing_recipe_name_gets_a_free_one_and_a_typo_is_caught_at_the_prompt(invoke, terminal, wizard_dir, patched_prompter):
    pipe, prompter, screen = terminal
    (wizard_dir / "recipe-lora_adapters.yaml").write_text("mine\n")
    keys = ("\r"                                    # the proposed free name
            + "tickets.cvs\r"                       # a typo: refused at the prompt
            + CLEAR + "tickets.jsonl\r"             # the right file: its columns are checked
            + "\r")                                 # held-out: blank (a slice of the training file)
    result, script = _advise(invoke, prompter, keys, pipe, {"path", "train_data", "eval_data"})
    assert result.exit_code == 0, result.output
    assert (wizard_dir / "recipe-lora_adapters.yaml").read_text() == "mine\n"  # never touched
    written = (wizard_dir / "recipe-lora_adapters-2.yaml").read_text()
    assert "train: tickets.jsonl" in written
    assert "recipe-lora_adapters-2.yaml" in screen()  # the default offered
    key, text, why = patched_prompter[0]
    assert (key, text) == ("train_data", "tickets.cvs") and "tickets.jsonl" in why  # did you mean
    assert result.output.rstrip().splitlines()[-1].startswith("next: adaptkit run recipe-lora_adapters-2.yaml")


def test_an_existing_name_typed_is_refused_and_missing_columns_are_named(invoke, terminal, wizard_dir, patched_prompter):
    pipe, prompter, screen = terminal
    (wizard_dir / "taken.yaml").write_text("mine\n")
    (wizard_dir / "no_labels.jsonl").write_text('{"text": "where is my parcel"}\n' * 20)
    keys = (CLEAR + "taken.yaml\r" + CLEAR + "fresh.yaml\r"
            + "no_labels.jsonl\r" + CLEAR + "tickets.jsonl\r" + "\r")
    result, _ = _advise(invoke, prompter, keys, pipe, {"path", "train_data", "eval_data"})
    assert result.exit_code == 0, result.output
    assert (wizard_dir / "taken.yaml").read_text() == "mine\n"
    from adaptkit.cli.wizard import _new_file

    with pytest.raises(ValueError, match="taken.yaml already exists"):
        _new_file(False)("taken.yaml")
    key, text, why = patched_prompter[0]
    assert (key, text) == ("train_data", "no_labels.jsonl") and "label" in why
    assert "train: tickets.jsonl" in (wizard_dir / "fresh.yaml").read_text()


def test_rag_asks_for_your_documents_folder_and_checks_it(invoke, terminal, tmp_path, monkeypatch, patched_prompter):
    pipe, prompter, _ = terminal
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(advise_cli, "_interactive", lambda: True)
    (tmp_path / "handbook").mkdir()
    (tmp_path / "handbook" / "leave.md").write_text("Employees get 25 days of paid leave a year.\n")
    (tmp_path / "questions.jsonl").write_text('{"question": "How many days of leave?", "source": "leave.md", "answer": "25 days"}\n')
    script = Mixed(prompter, {"path", "corpus_dir", "eval_data"}, {"bake_off": False, "data": None})
    monkeypatch.setattr(advise_cli, "_prompter", lambda: script)
    pipe.send_text("\r" + "handbok\r" + CLEAR + "handbook\r" + "questions.jsonl\r")
    result = invoke("advise", "--answers", ROOT / "examples/answers/policy_assistant.yaml")
    assert result.exit_code == 0, result.output
    assert "train_data" not in script.asked  # retrieval trains nothing: no training file asked
    written = (tmp_path / "recipe-rag.yaml").read_text()
    assert "corpus: handbook" in written and "eval: questions.jsonl" in written and "max_new_tokens: 300" in written
