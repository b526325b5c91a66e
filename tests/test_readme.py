"""The README drifts from the code only by failing this: every command in its code blocks runs here (training ones
capped at a few steps, with `training.max_steps=2 data.max_rows=64` added), the output it shows is checked, its
Python snippet runs, its links resolve, it stays short, and the recipe reference is the schema's current output."""

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
MATCHES = list(re.finditer(r"```(\w*)\n(.*?)```", README, flags=re.S))
BLOCKS = [m.groups() for m in MATCHES]
CAPPED = ["training.max_steps=2", "data.max_rows=64"]  # what a test adds to a command that trains


def commands() -> list[str]:
    found = []
    for language, body in BLOCKS:
        for line in body.splitlines():
            line = line.strip()
            if language == "bash" and line and not line.startswith("#"):
                found.append(line.split("  #")[0].strip())
            elif line.startswith("$ adaptkit"):
                found.append(line[2:].strip())
    return found


@pytest.mark.unit
def test_the_readme_is_short_and_its_links_resolve():
    assert len(README.splitlines()) < 250
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        assert (ROOT / target).exists(), target


@pytest.mark.unit
def test_the_recipe_reference_is_current():
    from adaptkit.recipe.reference import reference

    assert (ROOT / "docs" / "recipe-reference.md").read_text(encoding="utf-8") == reference(), \
        "regenerate it: python -m adaptkit.recipe.reference > docs/recipe-reference.md"


@pytest.mark.unit
def test_every_readme_command_is_known_to_this_test():
    """A new command in the README must be run below (or be a make target / shell step); none goes untested."""
    makefile = (ROOT / "Makefile").read_text()
    for command in commands():
        words = shlex.split(command)
        if words[0] == "make":
            assert re.search(rf"^{words[1]}:", makefile, flags=re.M), command
        elif words[0] == "source":
            assert words[1] == ".venv/bin/activate"
        else:
            assert words[0] == "adaptkit" and command in RUN, f"README command not run by tests/test_readme.py: {command}"


RUN = [  # in order: each may use what the one before wrote
    "adaptkit advise --answers examples/answers/support_tickets.yaml",
    "adaptkit run recipes/lora_cls.yaml",
    "adaptkit advise --answers examples/answers/support_tickets.yaml --set model=sentence-transformers/all-MiniLM-L6-v2 "
    "--emit-recipe tickets.yaml",
    "adaptkit run tickets.yaml --dry-run",
    "adaptkit run tickets.yaml output_dir=runs/tickets",
    "adaptkit predict runs/tickets examples/data/support_tickets_test.jsonl -o predictions.jsonl",
    "adaptkit run image_cls",
    "adaptkit predict runs/image_cls examples/images/eval/circle_0000.png",
    "adaptkit run vlm_lora_sft",
    "adaptkit run whisper_lora",
    "adaptkit predict runs/whisper_lora examples/audio/eval/clip_0000.wav",
    "adaptkit estimate --model meta-llama/Llama-3.1-8B --method lora_adapters --gpu 4090",
    "adaptkit run cpt training.gradient_accumulation=2 --dry-run --num-processes 16 --num-machines 2",
    "adaptkit export cpt training.gradient_accumulation=2 --format slurm --machines 2 --gpus 8",
    "adaptkit export cpt training.gradient_accumulation=2 --format skypilot --machines 2 --gpus 8",
]


def _shown_after(command: str) -> list[str]:
    """The output lines the README shows in a plain block straight after (no text between) the one holding `command`."""
    for index, (_, body) in enumerate(BLOCKS[:-1]):
        if README[MATCHES[index].end():MATCHES[index + 1].start()].strip():
            continue
        lines = [" ".join(line.split("  #")[0].split()) for line in body.splitlines()]
        if command in lines and BLOCKS[index + 1][0] == "":
            return [line.strip() for line in BLOCKS[index + 1][1].splitlines() if line.strip() and line.strip() != "..."]
    return []


def test_the_readme_commands_run_as_written(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    for name in ("examples", "recipes"):
        (tmp_path / name).symlink_to(ROOT / name)
    for command in RUN:
        words = shlex.split(command)[1:]
        trains = words[0] == "run" and "--dry-run" not in words
        result = invoke(*words, *(CAPPED if trains else []))
        assert result.exit_code == 0, (command, result.output)
        said = " ".join(result.output.split())
        for line in _shown_after(command):
            assert " ".join(line.split()) in said, (command, line)
    assert Path("tickets.yaml").is_file() and Path("runs/tickets/metrics.json").is_file() and Path("predictions.jsonl").is_file()


def test_the_readme_python_snippet_runs(tmp_path, monkeypatch, capsys):
    snippet = next(body for language, body in BLOCKS if language == "python")
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet.replace("training.max_steps=30", "training.max_steps=2"), "README", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[0] == "lora_adapters" and len(printed) == 4


@pytest.mark.unit
@pytest.mark.parametrize("command", ["run", "predict", "advise", "estimate", "compare"])
def test_help_examples_keep_their_line_breaks(invoke, command):
    lines = invoke(command, "--help").stdout.splitlines()
    examples = [line.strip() for line in lines if line.strip().startswith("adaptkit ")]
    assert examples and all(line.startswith(f"adaptkit {command}") for line in examples), examples
