"""Output that reads: at 80 columns no method id or number is split, a pipe is not wrapped, a closed pipe is a normal end."""

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from adaptkit.methods.registry import registry

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = str(ROOT / "examples/answers/support_tickets.yaml")
COMMANDS = {
    "methods": ("methods",),
    "advise": ("advise", "--answers", ANSWERS, "--no-input"),
    "advise --explain": ("advise", "--answers", ANSWERS, "--no-input", "--explain"),
    "estimate --method all": ("estimate", "--method", "all", "--model", "meta-llama/Llama-3.1-70B", "--gpu-memory-gb", "80"),
}
NUMBER = re.compile(r"(?<![\w.,/:-])\d[\d,]*(?:\.\d+)?(?![\w/])")


def _words(text: str) -> tuple[Counter, Counter]:
    """Method ids and numbers as whole words, outside URLs (a URL longer than the line is folded, as it must be)."""
    text = re.sub(r"https?://\S+", " ", text)
    ids = Counter(m for m in re.findall(r"[a-z_]+", text) if m in registry())
    return ids, Counter(NUMBER.findall(text))


def _piece(word: str) -> bool:
    """A part of a method id cut inside a word (`prompt_engine`, `ering`), not a word of its own (`prompt`, `tuning`)."""
    if word in ("tuning", "learning", "engineering"):  # words of their own in prose ("prompt tuning")
        return False
    for method in registry():
        if method != word and method.startswith(word) and ("_" in word or method[len(word)] != "_"):
            return True
        if method != word and method.endswith(word) and ("_" in word or method[-len(word) - 1] != "_"):
            return True
    return False


@pytest.mark.parametrize("name", COMMANDS)
def test_80_columns_never_split_an_id_or_a_number(invoke, monkeypatch, name):
    monkeypatch.delenv("COLUMNS", raising=False)
    whole = invoke(*COMMANDS[name])
    assert whole.exit_code == 0, whole.output
    monkeypatch.setenv("COLUMNS", "80")
    narrow = invoke(*COMMANDS[name])
    assert narrow.exit_code == 0, narrow.output
    lines = narrow.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    ids, numbers = _words(whole.stdout)
    ids80, numbers80 = _words(narrow.stdout)
    assert ids and numbers
    assert not ids - ids80, f"ids split at 80 columns: {ids - ids80}"  # narrow layouts may repeat an id, never lose one
    assert not numbers - numbers80, f"numbers split at 80 columns: {numbers - numbers80}"
    pieces = {w for w in (t.lower() for t in re.findall(r"[A-Za-z_-]{4,}", narrow.stdout)) if w not in registry() and _piece(w)}
    assert not pieces, f"pieces of ids at 80 columns: {pieces}"


def test_a_pipe_is_not_wrapped_at_80_columns(invoke, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    out = invoke("advise", "--answers", ANSWERS, "--no-input", "--explain").stdout
    assert max(len(line) for line in out.splitlines()) > 100
    assert "  note: is_base_model = no: `mistralai/Mistral-7B-Instruct-v0.3` looks instruction-tuned\n" in out


def test_a_closed_pipe_is_a_normal_end():
    """`adaptkit recipes show qlora_sft | head`: the reader is gone before the first write; exit 0, nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "adaptkit", "recipes", "show", "qlora_sft"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT)
    finally:
        os.close(write_end)
    assert done.returncode == 0 and done.stderr == ""


def _commands(group, path=()):
    import click

    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_every_help_at_80_columns_keeps_its_examples_and_splits_no_id(invoke, monkeypatch):
    from adaptkit.cli import cli

    monkeypatch.setenv("COLUMNS", "80")
    for path in [(), *_commands(cli)]:
        text = invoke(*path, "--help").stdout
        assert "Usage:" in text, path
        pieces = {w for w in (t.lower() for t in re.findall(r"[A-Za-z_-]{4,}", text)) if w not in registry() and _piece(w)}
        assert not pieces, (path, pieces)
        examples = [line for line in text.splitlines() if line.strip().startswith("adaptkit ")]
        source = (getattr(cli, "get_command")(None, path[-1]) if len(path) == 1 else None)
        if source is not None and "\b" in (source.help or ""):  # the example block is printed line for line
            wanted = [line.strip() for line in source.help.split("\b", 1)[1].splitlines() if line.strip().startswith("adaptkit ")]
            assert [line.strip() for line in examples] == wanted, path
        too_long = [line for line in text.splitlines() if len(line) > 80 and not line.strip().startswith("adaptkit ")]
        assert not too_long, (path, too_long)


def test_the_compare_table_at_80_columns_is_a_block_per_run():
    from adaptkit.cli.compare import table
    from adaptkit.comparison import Comparison

    rows = [{"recipe": "bake-off/prompt_engineering.yaml", "method": "prompt_engineering", "metric": "accuracy", "value": 0.7125,
             "base_value": 0.6, "base_kind": "the bare input", "low": 0.61, "high": 0.81, "eval_rows": 80, "trainable_params": 0,
             "training_s": 0.0, "tokens_per_request": 182.0, "usd_per_1k_requests": 0.1234, "cost_basis": "tokens at $0.5 / $2 per 1M"},
            {"recipe": "bake-off/lora_adapters.yaml", "method": "lora_adapters", "metric": "accuracy", "value": 0.9875,
             "base_value": 0.2, "base_kind": "majority class (billing)", "low": 0.96, "high": 1.0, "eval_rows": 80,
             "trainable_params": 74883, "training_s": 41.2, "tokens_per_request": 31.0, "usd_per_1k_requests": 0.0042}]
    report = Comparison(rows, "bake-off/lora_adapters.yaml (lora_adapters): the cheapest that is within 0.02 of the best "
                              "accuracy (0.9875), with 74,883 trainable parameters", [], "input $0.5 per 1M tokens", Path("runs/compare"))
    narrow, wide = table(report, 80), table(report, 160)
    assert max(len(line) for line in narrow) <= 80 and max(len(line) for line in wide) > 120
    assert "prompt_engineering" in " ".join(narrow) and "74,883" in " ".join(narrow) and "0.9875" in " ".join(narrow)
    assert "bake-off/lora_adapters.yaml  (lora_adapters)" in narrow


def test_the_wizard_hints_fit_80_columns_with_their_instruction(monkeypatch):
    import shutil

    from adaptkit.cli.wizard import INSTRUCTION, QUESTIONS, _fit

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((80, 24)))
    for question in QUESTIONS:
        why = f"({question.why})"
        lines = _fit(why, len(INSTRUCTION) + 4)
        assert all(len(line) <= 79 for line in lines), question.key
        assert len(lines[-1]) + len(INSTRUCTION) + 1 <= 80, question.key  # the instruction follows whole on the last line
        assert " ".join(" ".join(line.split()) for line in lines).strip() == " ".join(why.split())  # words kept whole
