"""`adaptkit advise`: answers -> profile -> ranked methods, with reasons and sources."""

from __future__ import annotations

import json
import sys

import click

from adaptkit.advisor.engine import advise as run_advisor
from adaptkit.advisor.profile import check_keys, missing_required, read_answers, resolve
from adaptkit.cli._io import parse_overrides, write_new
from adaptkit.errors import InputError


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _prompter():
    from adaptkit.cli.wizard import QuestionaryPrompter

    return QuestionaryPrompter()


def _needs_gpus(answers: dict) -> bool:
    return answers.get("weight_access") in (None, "open") and not {"gpu_vram_gb", "num_gpus"} <= set(answers)


@click.command("advise")
@click.option("--answers", "answers_file", type=click.Path(dir_okay=True), help="YAML or JSON file with answers; the wizard asks only what it leaves out.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Set one answer (repeatable), e.g. --set labeled_examples=2k.")
@click.option("--json", "as_json", is_flag=True, help="Print the recommendation as JSON.")
@click.option("--explain", is_flag=True, help="Show every rule that fired and what it did.")
@click.option("--no-input", is_flag=True, help="Never prompt: missing answers take their defaults (task, goal, weight_access are required).")
@click.option("--save-answers", type=click.Path(dir_okay=False), help="Save the answers to this YAML file for reuse.")
@click.option("--force", is_flag=True, help="Replace an existing --save-answers file.")
def advise(answers_file, overrides, as_json, explain, no_input, save_answers, force):
    """Recommend an adaptation method for your task, data and hardware.

    Rules out what cannot work (weight access, memory, data, privacy), ranks the rest
    cheapest-sufficient first, and cites the evidence. Examples:

      adaptkit advise
      adaptkit advise --answers examples/answers/support_tickets.yaml --json
    """
    answers = read_answers(answers_file) if answers_file else {}
    answers.update(parse_overrides(overrides))
    where = answers_file or "answers"
    check_keys(answers, where)

    from adaptkit.estimate.hardware import detect_gpus

    gpus, detection = detect_gpus() if _needs_gpus(answers) else ([], "not run")
    if not no_input and _interactive():
        from adaptkit.cli.wizard import run_wizard

        answers = run_wizard(answers, _prompter(), gpus)
    elif missing_required(answers):
        raise InputError(
            f"{where}: missing {', '.join(missing_required(answers))} (not asking: --no-input or no terminal): "
            "give them with --answers FILE or --set KEY=VALUE"
        )
    profile, notes = resolve(answers, gpus, where)
    if save_answers:
        from adaptkit.cli.render import dump_answers

        write_new(save_answers, dump_answers(answers), force=force)
        notes.append(f"answers saved to {save_answers}")
    advice = run_advisor(profile, notes)
    hardware = {"detected_gpus": [{"name": g.name, "memory_gb": g.memory_gb} for g in gpus], "detection": detection}
    if as_json:
        click.echo(json.dumps(advice.to_dict(hardware), indent=2))
        return
    from adaptkit.cli.render import show_advice

    show_advice(advice, explain=explain)
