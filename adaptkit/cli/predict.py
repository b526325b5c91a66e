"""`adaptkit predict RUN_DIR [FILE]`: batch inference with a finished run, scored where the file has the answers."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from adaptkit.errors import InputError


MAX_STDIN_BYTES = 256 * 2**20


def _rows(source: str | None, run) -> list[dict]:
    """The rows to predict on: a data file, or JSONL (or plain text lines, one input each) on stdin."""
    from adaptkit.runners.data import read_rows

    images = run.recipe.task == "image_classification"
    if source and source != "-":
        from adaptkit.runners.data import AUDIO_SUFFIXES, IMAGE_SUFFIXES

        if images and source.lower().endswith(IMAGE_SUFFIXES):  # one picture, named on the command line
            return [{run.recipe.data.image_column: source}]
        if run.recipe.task == "speech_recognition" and source.lower().endswith(AUDIO_SUFFIXES):  # one clip
            return [{run.recipe.data.audio_column: source}]
        return read_rows(source, "train", "predict input")
    if sys.stdin.isatty():
        raise InputError("give a .jsonl/.csv/.parquet file to predict on, or pipe JSONL (or one text per line) into `-`")
    column = {"sequence_classification": run.recipe.data.text_column, "image_classification": run.recipe.data.image_column,
              "speech_recognition": run.recipe.data.audio_column}.get(run.recipe.task, run.recipe.data.prompt_column)
    rows = []
    try:
        lines = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1).decode("utf-8") if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise InputError(f"stdin is not UTF-8 text (byte {exc.start}): pipe JSONL or lines of text") from None
    if len(lines) > MAX_STDIN_BYTES:
        raise InputError(f"stdin holds over {MAX_STDIN_BYTES // 2**20} MB: give a file instead of `-`")
    for number, line in enumerate(lines.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = line.rstrip("\n")
        if isinstance(value, dict):
            rows.append(value)
        elif isinstance(value, str):
            rows.append({column: value})
        else:
            raise InputError(f"stdin line {number}: a JSON object or a line of text, not {type(value).__name__}")
    return rows


def _base(source: str | None) -> Path:
    """The folder an image row's relative path is read from: its data file's or folder's (an image named here, or
    stdin: the working folder's)."""
    from adaptkit.methods.supervised.media import files_folder
    from adaptkit.runners.data import AUDIO_SUFFIXES, IMAGE_SUFFIXES

    if source and source != "-" and not source.lower().endswith(IMAGE_SUFFIXES + AUDIO_SUFFIXES):
        return files_folder(source)
    return Path.cwd()


@click.command("predict")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("source", required=False, metavar="[FILE|-]")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the predictions here instead of stdout: .csv, .tsv or .parquet by its name, else JSONL.")
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=128, show_default=True, help="Causal LMs: tokens generated per row.")
@click.option("--column", metavar="NAME", help="The file's column with what the model reads (text, prompt, messages, image or "
              "audio), where it is not named as in training.")
@click.option("--answer-column", metavar="NAME", help="The file's column with the answers to score against (label, reference "
              "answer or transcript), where it is not named as in training.")
@click.option("--allow-code", is_flag=True, help="Score with the run's own scorer code (a module:function or the code scorer).")
@click.option("--trust-remote-code", is_flag=True, help="Load a run whose model ships its own Python code (trust_remote_code).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (rows, seconds, scores) as JSON on stdout; needs --output.")
def predict(run_dir, source, output, force, batch_size, max_new_tokens, column, answer_column, allow_code, trust_remote_code,
            as_json):
    """Predict with a finished run on a file (or stdin): JSONL rows with each prediction.

    A classifier gives the label and every class's probability (the class names saved at training); a causal LM
    generates greedily with the run's chat template; an image classifier reads the image column (paths relative to the
    file), an image file, or image paths on stdin. When the file has the answers (the recipe's label or response
    column), the predictions are scored. A run folder is data: its scorer code and its model's own code run only with
    --allow-code and --trust-remote-code given here. Examples:

    \b
      adaptkit predict runs/lora_cls examples/data/support_tickets_test.jsonl -o predictions.jsonl
      adaptkit predict runs/lora_cls reviews.csv --column review --answer-column sentiment -o scored.csv
      echo "I was charged twice" | adaptkit predict runs/lora_cls -
      adaptkit predict runs/image_cls examples/images/eval/circle_0001.png
      adaptkit predict runs/whisper_lora examples/audio/eval/clip_0000.wav
      adaptkit predict runs/sd_lora prompts.jsonl -o drawn.jsonl   # pictures in drawn_images/
    """
    from pathlib import Path

    from adaptkit.cli._io import progress_line, rows_as, write_new
    from adaptkit.runners.predict import load_model, open_run, unscored
    from adaptkit.runners.predict import predict as run_predict

    if as_json and not output:
        raise InputError("--json prints the summary on stdout, where the predictions go without --output: give -o FILE")
    if output and Path(output).expanduser().exists() and not force:  # said before any model loads
        raise InputError(f"{output} already exists: choose another name or pass --force to replace it")
    run = open_run(run_dir, allow_code, trust_remote_code, drawing=True, column=column, answer_column=answer_column)
    images_dir = None
    if run.recipe.task == "text_to_image":  # pictures go in a new folder beside the output file
        if not output:
            raise InputError(f"{run_dir} draws pictures: give -o FILE (the pictures go in FILE's name + _images/ beside it)")
        images_dir = Path(output).expanduser().with_suffix("").with_name(Path(output).stem + "_images")
        if images_dir.exists() and any(images_dir.iterdir()):
            raise InputError(f"{images_dir} already holds files: choose another -o (pictures are never written over)")
    rows = _rows(source, run)
    loaded = load_model(run)
    started = time.perf_counter()  # the rate is the predictions', not the model load's
    predicted, scores = run_predict(run, rows, batch_size, max_new_tokens, progress_line("predicting", "rows"), loaded, _base(source),
                                    images_dir)
    seconds = time.perf_counter() - started
    if output:
        write_new(output, rows_as(predicted, output), force=force)
    else:
        click.echo(rows_as(predicted, "-"), nl=False)
    summary = {"rows": len(predicted), "seconds": round(seconds, 3), "rows_per_second": round(len(predicted) / max(seconds, 1e-9), 2),
               "scores": scores, "output": output}
    note = unscored(run)
    if note:
        summary["note"] = note
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    said = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in (scores or {}).items()
                     if isinstance(v, (int, float, str)))
    click.echo(f"predicted {len(predicted)} row{'' if len(predicted) == 1 else 's'} in {seconds:.1f} s ({summary['rows_per_second']:.1f} rows/s)"
               + (f"; {said}" if said else "") + (f" -> {output}" if output else ""), err=True)
