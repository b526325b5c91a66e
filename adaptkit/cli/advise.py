"""`adaptkit advise`: answers -> profile -> ranked methods, with reasons and sources."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Callable

import click

from adaptkit import api
from adaptkit.advisor.engine import advise as run_advisor
from adaptkit.advisor.profile import check_keys, check_values, missing_required, read_answers, resolve
from adaptkit.cli._io import parse_overrides, rows_as, write_new
from adaptkit.errors import AdaptkitError, InputError


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _prompter():
    from adaptkit.cli.wizard import QuestionaryPrompter

    return QuestionaryPrompter()


@click.command("advise")
@click.option("--answers", "answers_file", type=click.Path(dir_okay=True), help="YAML or JSON file with answers; the wizard asks only what it leaves out.")
@click.option("--data", "data_file", type=click.Path(),
              help="A .jsonl/.csv/.parquet data file, or a folder of images or audio with a metadata file: fills the task, "
                   "the modality, the counts and the token lengths it proves.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Set one answer (repeatable), e.g. --set labeled_examples=2k.")
@click.option("--json", "as_json", is_flag=True, help="Print the recommendation as JSON.")
@click.option("--explain", is_flag=True, help="Show every rule that fired and what it did.")
@click.option("--no-evidence", is_flag=True, help="Rank by the rules alone, not by runs in the ledger measured on the same data.")
@click.option("--no-input", is_flag=True, help="Never prompt: missing answers take their defaults (task, goal, weight_access are required).")
@click.option("--save-answers", type=click.Path(dir_okay=False), help="Save the answers to this YAML file for reuse.")
@click.option("--emit-recipe", type=click.Path(dir_okay=False), help="Write a runnable recipe for the top runnable method to this file.")
@click.option("--method", "emit_method", metavar="METHOD", help="With --emit-recipe: write the recipe of this recommended method instead.")
@click.option("--bake-off", "bake_off", type=click.Path(file_okay=False),
              help="Write recipes for the top three runnable methods to this folder and print the compare command.")
@click.option("--force", is_flag=True, help="Replace existing --save-answers, --emit-recipe or --bake-off files.")
def advise(answers_file, data_file, overrides, as_json, explain, no_evidence, no_input, save_answers, emit_recipe, emit_method, bake_off,
           force):
    """Recommend an adaptation method for your task, data and hardware.

    Rules out what cannot work (weight access, memory, data, privacy), ranks the rest
    cheapest-sufficient first, and cites the evidence. Examples:

    \b
      adaptkit advise
      adaptkit advise --answers examples/answers/support_tickets.yaml --json
      adaptkit advise --data tickets.jsonl --set goal=behavior --set weight_access=open
    """
    if emit_method and not emit_recipe:
        raise InputError("--method chooses the method of --emit-recipe: give --emit-recipe FILE too")
    if emit_method:
        from adaptkit.methods.registry import get

        get(emit_method)  # an unknown id: a did-you-mean now
    if not force:  # every file this call would write is checked before any is written
        from pathlib import Path

        for path in (save_answers, emit_recipe):
            if path and Path(path).expanduser().exists():
                raise InputError(f"{path} already exists: choose another name or pass --force to replace it")
    answers = read_answers(answers_file) if answers_file else {}
    if answers_file:
        check_keys(answers, answers_file)
    given = parse_overrides(overrides)
    check_values(given, "--set")  # a bad --set is blamed on the --set, not on the answers file
    where = " with ".join(part for part in (answers_file, "--set" if given else None) if part) or "answers"
    interactive = not no_input and _interactive()
    if interactive and not data_file and "train_data" not in {**answers, **given}:
        from adaptkit.cli.wizard import ask_data_file

        data_file = ask_data_file(_prompter())
        if data_file:  # columns named the user's own way: which is which, asked now (and kept like --set)
            from adaptkit.cli.wizard import named_columns

            given.update(named_columns(_prompter(), data_file, {**answers, **given}))

    def ask(answers: dict, gpus: list, notes: list[str]) -> dict:
        """The wizard for what is missing (or, without a terminal, a clear refusal); the answers saved before any advice."""
        if interactive:
            if not as_json:
                for line in notes:  # what the data file proved, before the questions it spares
                    click.echo(line)
            from adaptkit.cli.wizard import run_wizard

            answers = run_wizard(answers, _prompter(), gpus)
        elif missing_required(answers):
            raise InputError(f"{where}: missing {', '.join(missing_required(answers))} (not asking: --no-input or no terminal): "
                             "give them with --answers FILE or --set KEY=VALUE")
        if save_answers:  # valid answers only, saved before anything later can fail
            from adaptkit.cli.render import dump_answers

            resolve(answers, gpus, where)
            write_new(save_answers, dump_answers(answers), force=force)
        final.update(answers)
        return answers

    final: dict = {}
    try:
        advice = api.advise(answers, data=data_file, ask=ask, where=where, evidence=not no_evidence, **given)  # --data beats the file, --set beats both
        _advise_and_write(advice, final, interactive, as_json, explain, save_answers, emit_recipe, bake_off, force, emit_method)
    except AdaptkitError as exc:
        if not (interactive and final and not save_answers):
            raise
        from adaptkit.cli.render import dump_answers
        from adaptkit.cli.wizard import free_name

        kept = write_new(free_name("adaptkit-answers.yaml"), dump_answers(final))  # the wizard's answers are not lost
        raise type(exc)(f"{exc} (your answers are saved: rerun with `adaptkit advise --answers {kept}`)") from None


def _advise_and_write(advice, answers: dict, interactive: bool, as_json: bool, explain: bool, save_answers, emit_recipe, bake_off,
                      force: bool, method: str | None = None) -> None:
    """After the answers: the advice, and the files asked for (the recipe, the bake-off), shown or as JSON."""
    if save_answers:
        advice.notes.append(f"answers saved to {save_answers}")
    written: list[str] = []  # what was written and what to run next: said last, under the table, where it stays in view
    if emit_recipe:
        written += _emit(advice, emit_recipe, force, method)
    if bake_off:
        written += _bake_off(advice, bake_off, force)
    if as_json:
        click.echo(json.dumps(advice.to_dict(), indent=2))
        return
    from adaptkit.cli.render import show_advice

    show_advice(advice, explain=explain)
    for line in written:
        click.echo(line)
    if interactive and not emit_recipe:
        _offer_recipe(advice, answers, force)


def _emit(advice, path: str, force: bool, method: str | None = None) -> list[str]:
    """Write the recipe for the top runnable method (or `method`); return the lines that say so and what to run next."""
    written = api.write_recipe(advice, path, method, force)
    lines = []
    stage = written
    while stage is not None:
        recipe = stage.fields
        lines += [f"\nwrote {stage.path} ({recipe['method']}, {recipe['task']}, model {recipe['model']})"] + [f"  {n}" for n in stage.notes]
        stage = stage.then
    return lines + [f"next: adaptkit run {path} --dry-run   then   adaptkit run {path}"]


def _bake_off(advice, folder: str, force: bool) -> list[str]:
    """Recipes for the top runnable choices; returns the lines naming them and the compare command that settles it."""
    from pathlib import Path

    from adaptkit.recipe.emit import recipe_for, render, runnable

    methods = runnable(advice)[:3]
    if len(methods) < 2:
        raise InputError(f"a bake-off needs two runnable recommendations; there {'is' if methods else 'are'} {len(methods) or 'none'}")
    from adaptkit.rundir import check_location

    target = Path(folder).expanduser()
    check_location(target, "--bake-off")
    from adaptkit.recipe.load import relative_inputs, validate
    from adaptkit.runners.data import load_data

    source = advice.profile.train_data
    split = _held_out_split(advice, target)  # one training file only: hold rows out so no method is scored on what it trained on
    written_for = dataclasses.replace(advice, profile=advice.profile.model_copy(
        update={"train_data": split[0], "eval_data": split[1]})) if split else advice

    files, eval_data, tasks, skipped = {}, None, set(), []
    for method in runnable(advice):  # the top three whose recipe reads the data it is given
        if len(files) == 3:
            break
        recipe, notes = recipe_for(advice, output_name=f"bake-off/{method}", method=method)
        try:
            load_data(validate(recipe, f"the {method} recipe"))  # the split files hold the same columns
        except InputError as exc:
            skipped.append(f"skipped {method}: {exc}")
            continue
        if split:
            recipe, notes = recipe_for(written_for, output_name=f"bake-off/{method}", method=method)
        path = target / f"{method}.yaml"
        eval_data = eval_data or recipe["data"].get("eval")
        relative_inputs(recipe, target)  # each recipe reads its files from its own folder
        files[path] = render(recipe, written_for, notes, str(path), method)
        tasks.add(recipe["task"])
    if len(files) < 2:
        raise InputError(f"a bake-off needs two recipes that read this data; {len(files)} did"
                         + (f" ({'; '.join(skipped)})" if skipped else ""))
    methods = [path.stem for path in files]
    clashes = [path for path in [*files, *(Path(f) for f in split or ())] if path.exists()]
    if clashes and not force:  # all or nothing: never half a bake-off
        raise InputError(f"{clashes[0]} already exists: choose another folder or pass --force to replace the bake-off")
    target.mkdir(parents=True, exist_ok=True)
    if split:
        for path, rows in zip(split, split.rows):
            write_new(Path(path), rows_as(rows, path), force=True)
    for path, text in files.items():
        write_new(path, text, force=True)
    written = [str(path) for path in files]
    shared = eval_data and len(tasks) == 1  # one held-out file only fits recipes of one task
    tail = " ".join(written) + (f" --eval-data {eval_data}" if shared else "")
    held = ([f"  {len(split.rows[1])} of the {len(split.rows[0]) + len(split.rows[1])} rows of {source} held out for "
             f"scoring ({split[1]}); every recipe trains on or draws from the rest ({split[0]})"] if split else [])
    return ([f"\nwrote a bake-off of {', '.join(methods)} to {target}"] + held + [f"  {line}" for line in skipped]
            + [f"or stop the weak ones early (successive halving): adaptkit bakeoff {tail}",
               f"settle it on your data: adaptkit compare {tail}"])


class _Split(tuple):
    rows: tuple


def _held_out_split(advice, target) -> "_Split | None":
    """(train file, held-out file) to write into the bake-off folder when the user gave one local training file and no
    eval file: as many rows held out as an emitted recipe holds out (a tenth, or 30 of a small file; at most 500),
    seeded, the same rows for every method. Text rows that repeat each other, exactly or nearly (as the runs' leak
    check finds them), stay on one side together: a held-out row never has a near copy in training, so the runs do
    not refuse the split as leaked."""
    import random

    from adaptkit.recipe.emit import held_out
    from adaptkit.runners.data import is_file_reference, near_groups, read_rows

    p = advice.profile
    if not p.train_data or p.eval_data or not is_file_reference(p.train_data):
        return None
    rows = read_rows(p.train_data, "train", "data")
    if len(rows) < 4:
        return None
    texts = _inputs(rows, p) if p.modality == "text" else None
    groups: dict[int, list[int]] = {}
    for index, group in enumerate(near_groups(texts) if texts else range(len(rows))):
        groups.setdefault(group, []).append(index)
    clusters = sorted(groups.values())
    random.Random(42).shuffle(clusters)
    wanted = min(500, held_out(len(rows))[1])
    held: set[int] = set()
    for cluster in clusters:  # whole groups, while they fit in what is still wanted
        if len(held) + len(cluster) <= wanted:
            held.update(cluster)
    if not held:  # every group is larger than a tenth: no split keeps them apart
        return None
    folder = target.resolve()  # recipes resolve relative paths against their own folder: write absolute ones
    split = _Split((str(folder / "train.jsonl"), str(folder / "heldout.jsonl")))
    from adaptkit.methods.supervised.media import files_folder

    rows = _media_made_absolute(rows, files_folder(p.train_data))
    split.rows = ([r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held])
    return split


def _inputs(rows: list, profile) -> list[str] | None:
    """Each row's input (a classifier's text, a prompt, the messages), read as the leak check reads a column; None when
    the rows have none of the profile's columns."""
    from adaptkit.runners.data import value_text

    for column in (profile.messages_column, profile.text_column, profile.prompt_column, "messages", "text", "prompt", "question"):
        if column and all(isinstance(row, dict) and column in row for row in rows):
            return [value_text(row[column]) for row in rows]
    return None


def _media_made_absolute(rows: list, base: Path) -> list:
    """The rows with their image and audio files named by absolute paths: they were relative to the data file's folder
    (or the data folder), and the split files are written elsewhere (a value, or an image_url in chat messages, naming an existing file)."""
    from adaptkit.runners.data_facts import media_kind

    def fixed(value):
        if isinstance(value, str) and media_kind(value) and not value.startswith("data:") and (base / value).is_file():
            return str(base / value)  # an absolute value stays itself: base / an absolute path is that path
        if isinstance(value, dict):
            return {key: fixed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fixed(item) for item in value]
        return value

    return [fixed(row) for row in rows]


def _file_check(answers: dict, method: str, columns: dict) -> Callable[[str, str], str]:
    """For the wizard's data prompts: the recipe this answer would write, its data read and checked now, at the prompt
    (missing file, typo, missing columns), so a wrong path costs one retyped line, not the session."""
    chosen: dict = {}
    seen: dict = {}

    def check(key: str, text: str) -> str:
        text = text.strip()
        if (key, text) in seen:
            return seen[key, text]
        from pathlib import Path

        from adaptkit.recipe.emit import recipe_for
        from adaptkit.recipe.load import validate
        from adaptkit.runners.data import PATH_LIKE, load_data

        trial = {**chosen, key: text}
        if key == "train_data" and Path(text).expanduser().is_file():  # its own column names become answers
            from adaptkit.advisor.profile import COLUMNS
            from adaptkit.runners.data_facts import infer

            try:
                facts = infer(text, answers.get("model"))
            except InputError as exc:
                raise ValueError(str(exc)) from None
            columns.clear()  # the column names read from the training file: answers for the recipe
            columns.update({k: v for k, v in facts.answers.items() if k in COLUMNS and not answers.get(k)})
            trial.update(columns)
        if key == "corpus_dir" or Path(text).expanduser().exists() or PATH_LIKE.search(text):
            profile, _ = resolve({**answers, **trial}, None)
            try:  # a hub dataset id is fetched at run time; anything on disk (or that looks like a path) is read now
                recipe, _ = recipe_for(run_advisor(profile), method=method)
                load_data(validate(recipe, "the recipe"))
            except InputError as exc:
                raise ValueError(str(exc)) from None
        chosen[key] = seen[key, text] = text
        return text
    return check


def _offer_recipe(advice, answers: dict, force: bool) -> None:
    """The wizard's last step: write the recipe for the top trainable recommendation."""
    from adaptkit.methods.registry import registry
    from adaptkit.recipe.emit import pick

    method = pick(advice)
    if method is None:
        return
    from adaptkit.cli.wizard import ask_recipe

    columns: dict = {}
    reply = ask_recipe(_prompter(), registry()[method], _file_check(answers, method, columns), force, given=answers)
    if reply is None:
        return
    path = reply.pop("path")
    data = {key: value for key, value in reply.items() if value}
    if data.get("train_data"):
        data.update(columns)
    if data:
        profile, _ = resolve({**answers, **data}, None)
        advice = run_advisor(profile)
    for line in _emit(advice, path, force, method):
        click.echo(line)
    from adaptkit.cli.wizard import ask_bake_off
    from adaptkit.recipe.emit import runnable

    if len(runnable(advice)) >= 2 and ask_bake_off(_prompter()):
        for line in _bake_off(advice, "bake-off", force):
            click.echo(line)
