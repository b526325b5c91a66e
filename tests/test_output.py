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
