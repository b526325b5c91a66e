"""Render advice for people, with rich."""

from __future__ import annotations

from pathlib import Path

import json
import shlex

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from adaptkit.methods.catalogue import methods

class _Console(Console):
    """Rich's console, with a reader that leaves early (`| head`) a normal end: exit 0, not rich's 1."""

    def on_broken_pipe(self) -> None:
        import os
        import sys

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(0)


PIPE_WIDTH = 160  # tables laid out for a file or a pipe (prose is not wrapped there at all)
WIDE = 110  # from this width up, tables; below it, one block per item with hanging indents


def make_console(err: bool = False) -> Console:
    """A terminal (or an explicit COLUMNS) gets its own width; a pipe or a file is not wrapped at 80 columns."""
    import os
    import sys

    stream = sys.stderr if err else sys.stdout
    if os.environ.get("COLUMNS") or (hasattr(stream, "isatty") and stream.isatty()):
        return _Console(highlight=False, stderr=err)
    return _Console(highlight=False, stderr=err, width=PIPE_WIDTH, soft_wrap=True)


def hanging(console: Console, text: str, indent: int, bullet: str = "", markup: bool = True) -> None:
    """Print `text` indented (after `bullet`), its wrapped lines under its first, never from column 0; words and
    numbers stay whole. A pipe or a file gets one unwrapped line."""
    if console.soft_wrap:
        console.print(" " * indent + bullet + text, markup=markup)
        return
    from rich.text import Text

    body = Text.from_markup(text) if markup else Text(text)
    if bullet:
        grid = Table.grid()
        grid.add_column(no_wrap=True)
        grid.add_column()
        grid.add_row(bullet, body)
        body = grid
    console.print(Padding(body, (0, 0, 0, indent), expand=False))


def dump_answers(answers: dict) -> str:
    """YAML text for --save-answers."""
    import yaml

    header = "# adaptkit answers: reuse with `adaptkit advise --answers THIS_FILE`\n"
    return header + yaml.safe_dump(answers, sort_keys=False, allow_unicode=True)


def show_advice(advice, explain: bool = False) -> None:
    console = make_console()
    catalogue = methods()
    profile = advice.profile
    kind = {"cuda": "GPU", "rocm": "AMD GPU", "mps": "Apple silicon GPU (unified memory)"}[profile.gpu_kind]
    hardware = (
        f"{profile.num_gpus} x {profile.gpu_vram_gb:g} GB {kind}" if profile.num_gpus else "no GPU"
    ) if profile.weight_access == "open" else "closed weights"
    size = f", {profile.model_params_b:.3g}B" if profile.model_params_b else ""
    if profile.model_params_b and profile.model_active_params_b:
        size += f" ({profile.model_active_params_b:.3g}B active)"
    console.print(
        f"[bold]Profile[/]: {profile.task}{'' if profile.modality == 'text' else f' ({profile.modality})'}, goal {profile.goal}, "
        f"{profile.weight_access}{size}, {hardware}, "
        f"{profile.labeled_examples:,} labeled, {profile.preference_pairs:,} pairs, volume {profile.inference_volume}"
    )
    for note in advice.notes:
        hanging(console, f"[dim]{escape(note)}[/]", 2, bullet="note: ")

    if not advice.recommendations:
        console.print("\n[bold red]No method survives the gates.[/] What rules each out is listed below.")
    else:
        console.print("[bold]Recommended, best first[/]")
        if advice.evidence:
            hanging(console, f"[bold green]{escape(advice.evidence['said'])}[/]", 2, bullet="evidence: ")
        if console.width >= WIDE:
            table = Table(box=box.SIMPLE_HEAD, expand=console.is_terminal, padding=(0, 1))
            for column, style, ratio in (("#", "bold", None), ("method", "bold cyan", None), ("score", "", None),
                                         ("why", "", 4), ("changes", "dim", 2), ("cost", "", 2), ("feasibility", "", 3)):
                table.add_column(column, style=style, ratio=ratio, no_wrap=ratio is None, overflow="fold")
            for rank, rec in enumerate(advice.recommendations, 1):
                method = catalogue[rec.method]
                why = "\n".join(rec.why[:3]) or "+ cheapest first"
                table.add_row(str(rank), rec.method, f"{rec.score:g}", why, method.touches, method.cost_tier, rec.feasibility)
            console.print(table)
        else:  # narrow terminals: one block per method
            for rank, rec in enumerate(advice.recommendations, 1):
                method = catalogue[rec.method]
                console.print(f"  [bold]{rank}. [cyan]{rec.method}[/][/]  score {rec.score:g}")
                hanging(console, f"[dim]changes {method.touches}; cost {method.cost_tier}; {escape(rec.feasibility)}[/]", 5)
                hanging(console, escape('; '.join(rec.why[:3]) or '+ cheapest first'), 5)
            console.print()

    if advice.ruled_out:
        console.print("[bold]Ruled out[/]")
        for method, reasons in advice.ruled_out.items():
            console.print(f"  [red]x[/] [bold]{method}[/]")
            for reason in reasons:
                hanging(console, escape(reason), 6)
    if advice.combine:
        console.print(f"\n[bold]Combine[/]: {' + '.join(advice.combine)} (goals are mixed: each covers a part)")
    if advice.recommendations:
        top = advice.recommendations[0]
        console.print(f"\n[bold]Why {top.method}[/]")
        for line in top.rationale:
            hanging(console, escape(line), 2, bullet="- ")
        console.print("[bold]Sources[/]")
        for source in top.sources:
            hanging(console, escape(source), 2)
    if explain:
        _show_rules(console, advice)
    else:
        console.print("\n[dim]--explain shows every rule that fired; --json gives the machine-readable answer.[/]")


def _show_rules(console: Console, advice) -> None:
    if advice.evidence:
        console.print("\n[bold]Measured runs on this data[/] (the ledger; --no-evidence ranks by the rules alone)")
        for run in advice.evidence["runs"]:
            hanging(console, escape(f"{run['method']}: {advice.evidence['metric']} {run['value']:.4f}, ledger run {run['record']}, "
                                    f"{run['recipe']}"), 2)
        hanging(console, escape(f"ranked {advice.evidence['first']} first; the rules alone ranked {advice.evidence['rules_first']} first"), 2)
    console.print("\n[bold]Rules that fired[/], in table order")
    for firing in advice.firings:
        rule = firing.rule
        hanging(console, f"[bold]{rule.id}[/] {escape(rule.title)}  [dim](when {escape(firing.condition)})[/]", 2)
        hanging(console, f"did: {escape('; '.join(firing.effects))}", 6)
        hanging(console, f"why: {escape(firing.reason)}", 6)
        if rule.sources:
            hanging(console, f"sources: {escape(', '.join(rule.sources))}", 6)


def _fit_text(result: dict) -> str:
    if result["fits"] is None:
        return "no device to check (pass --gpu or --gpu-memory-gb)"
    verb = "fits" if result["fits"] else "does NOT fit"
    text = f"{verb}: {result['peak_memory_gb']:.1f} of {result['device_memory_gb']:g} GB per device"
    if result.get("tight"):
        share = result["peak_memory_gb"] / result["device_memory_gb"]
        text += f", but tightly ({share:.0%}; the estimate is good to about +-20%, so it may not: the changes below leave room)"
    return text


def _range(value: dict | None, unit: str) -> str:
    if not value:
        return "-"
    if value["low"] == value["high"]:  # one figure (from a measured throughput)
        return f"{value['low']:,.2f} {unit}" if unit == "h" else f"${value['low']:,.0f}"
    return f"{value['low']:,.2f}-{value['high']:,.2f} {unit}" if unit == "h" else f"${value['low']:,.0f}-{value['high']:,.0f}"


def _params(result: dict) -> str:
    total, active = result["total_params"], result.get("active_params", result["total_params"])
    text = f"{_count(total)} parameters"
    return text if active == total else f"{text} ({_count(active)} active per token: memory follows the total, compute the active)"


def _count(params: float) -> str:
    """7.62B, 22.7M or 217,920: a size in the unit that shows it (a tiny test model is not "0.00B")."""
    if params >= 1e9:
        return f"{params / 1e9:.2f}B"
    return f"{params / 1e6:.1f}M" if params >= 1e6 else f"{params:,.0f}"


def show_estimate(result: dict) -> None:
    """One method's estimate: components, fit, suggestions, time, assumptions."""
    console = make_console()
    setup = result["setup"]
    size = f"{setup['resolution']} px images" if setup.get("resolution") else f"{setup['seq_len']} tokens"  # a diffusion UNet: its images
    console.print(
        f"[bold]{result['method']}[/] on [bold]{result['model']}[/]: {_params(result)}, "
        f"{result['trainable_params']:,} trainable; {setup['precision']}, quantization {setup['quantization']}, "
        f"batch {setup['batch_size']} x {size}, {setup['num_gpus']} GPU(s), sharding {setup['sharding']}"
    )
    table = Table(box=box.SIMPLE_HEAD, title="Peak memory per device", title_justify="left")
    table.add_column("component")
    table.add_column("GB", justify="right")
    for name, value in result["breakdown"].items():
        if value:
            table.add_row(name.replace("_", " "), f"{value:.2f}")
    table.add_row("[bold]peak[/]", f"[bold]{result['peak_memory_gb']:.2f}[/]")
    console.print(table)
    style = "green" if result["fits"] else "red" if result["fits"] is False else "yellow"
    console.print(f"[{style}]{_fit_text(result)}[/] ({result['device'] or 'no device'})")
    if result["suggestions"]:
        console.print("[bold]Changes that leave room[/] (cheapest first):" if result.get("tight") else
                      "[bold]Changes that make it fit[/] (cheapest first):")
        for item in result["suggestions"]:
            console.print(f"  - {item['change']}: {item['peak_memory_gb']:.1f} GB")
            _show_apply(console, item, result)
    if result["verdict"]:
        console.print(f"[bold red]{result['verdict']}[/]")
    if result["train_flops"]:
        console.print(f"compute: {result['train_flops']:.3g} FLOPs; time {_range(result['estimated_hours'], 'h')}; "
                      f"cost {_range(result['estimated_cost_usd'], '$')}")
    if result.get("inference"):
        inference = result["inference"]
        line = f"per request: {inference['prompt_tokens']:,} prompt tokens ({inference['prompt_breakdown']}) + {inference['output_tokens']} out"
        if inference["cost_per_request_usd"] is not None:
            line += f"; ${inference['cost_per_request_usd']:.6f} a request"
        if inference["cost_per_day_usd"] is not None:
            line += f", ${inference['cost_per_day_usd']:,.2f} a day at {inference['requests_per_day']:,.0f} requests"
        console.print(line)
        for note in inference["assumptions"]:
            console.print(f"  - {note}")
    console.print("[bold]Assumptions[/]")
    for line in result["assumptions"]:
        console.print(f"  - {line}")


def _show_apply(console: Console, item: dict, estimate: dict) -> None:
    """The command that applies a step-down suggestion to the recipe: its overrides (after the ones given) and run flags."""
    if estimate.get("recipe") and (item.get("overrides") or item.get("flags")):
        words = [estimate["recipe"], *estimate.get("recipe_overrides", []), *item["overrides"]]
        command = " ".join(["adaptkit run", *map(shlex.quote, words), *item["flags"]])
        console.print(f"      apply: {command}", markup=False, highlight=False)


def show_estimates(results: list[dict]) -> None:
    """Every method side by side on one model and device."""
    console = make_console()
    first = results[0]
    console.print(f"[bold]{first['model']}[/]: {_params(first)}; device: {first['device'] or 'none given'}")
    wide = console.width >= WIDE  # narrower: the changes go under the table, where they have the full width
    table = Table(box=box.SIMPLE_HEAD, title="Peak memory per device, by method", title_justify="left", padding=(0, 1))
    for column, justify in (("method", "left"), ("trainable", "right"), ("peak GB", "right"), ("fits", "left"), ("time", "right")):
        table.add_column(column, justify=justify, no_wrap=True)  # ids and numbers are never split
    if wide:
        table.add_column("cheapest change if not", overflow="fold")
    changes = []
    for result in results:
        fits = {True: "[green]yes[/]", False: "[red]no[/]", None: "?"}[result["fits"]]
        change = result["suggestions"][0]["change"] if result["suggestions"] else (result["verdict"] or "")
        cells = [result["method"], f"{result['trainable_params']:,}", f"{result['peak_memory_gb']:.1f}", fits,
                 _range(result["estimated_hours"], "h")]
        table.add_row(*cells, *([escape(change)] if wide else []))
        if change and not wide:
            changes.append((result["method"], change))
    console.print(table)
    if changes:
        console.print("[bold]Cheapest change where it does not fit[/]")
        for method, change in changes:
            hanging(console, escape(change), 2, bullet=f"{method}: ")
    console.print("[dim]--method ID shows one method's breakdown and assumptions; --json for all of it.[/]")


def show_dry_run(report: dict) -> None:
    console = make_console()
    for line in report.get("code", []) + ([report["output"]] if report.get("output") else []):
        console.print(f"[bold yellow]note:[/] {escape(line)}", highlight=False)  # first, where it cannot be missed
    console.print("[bold]Resolved recipe[/]")
    console.print(report["recipe"].rstrip(), markup=False)
    data = report["data"]
    if "train_rows" not in data:  # a method that trains nothing: its own summary, field by field
        console.print("\n[bold]Data[/]")
        for key, value in data.items():
            shown = json.dumps(value, indent=2) if isinstance(value, dict) else value
            console.print(f"  {key.replace('_', ' ')}: {shown}", markup=False)
        _show_memory_and_commands(console, report)
        return
    console.print(f"\n[bold]Data[/]: {data['train_rows']} train rows, {data['eval_rows']} eval rows (eval: {data['eval_source']})")
    if data.get("balance"):
        console.print(f"  [yellow]balance[/]: {escape(data['balance'])}")
    if data.get("leakage"):
        console.print(f"  [yellow]leakage[/]: {escape(data['leakage'])}")
    for source in data.get("sources", []):
        read = source["rows"] if source["rows"] == "streamed" else f"{source['rows']} rows"
        tokens = f", {source['tokens']:,} tokens" if "tokens" in source else ""
        console.print(f"  source {source['source']} ({source['format']}, {read}): {source['rows_in_mix']} in the mix "
                      f"({source['share']:.0%}{tokens})", markup=False)
    if "ratings" in data:
        console.print(f"  ratings (train): {data['ratings']['up']} up, {data['ratings']['down']} down")
    if "labels" in data:
        console.print("  labels (train): " + ", ".join(f"{k} {v}" for k, v in data["labels"].items()))
    console.print(f"  sample: {data['sample']}", markup=False)
    if data.get("audio"):
        a = data["audio"]
        console.print(f"  audio: {a['clips']} clips of {a['seconds'][0]}-{a['seconds'][1]} s ({a['total_minutes']} min) at "
                      f"{a['sample_rate']:,} Hz; the model's window is {a['window_s']:g} s")
    if data.get("images"):
        i = data["images"]
        console.print(f"  images: {i['count']}, {i['width'][0]}-{i['width'][1]} x {i['height'][0]}-{i['height'][1]} pixels "
                      "(the model's image processor resizes them)")
    if data.get("rewards"):
        console.print("  rewards (summed with their weights):")
        for line in data["rewards"]:
            console.print(f"    {line}", markup=False)
    if "rendered" in data:
        console.print(f"  rendered: {data['rendered']!r}", markup=False)
    tokenized = data.get("tokenized")
    if isinstance(tokenized, dict):
        console.print(f"  tokenized ({tokenized['length']} tokens): {' '.join(tokenized['tokens'])}", markup=False)
        lengths = data["lengths"]
        console.print(f"  lengths: max {lengths['max']}, mean {lengths['mean']}; {lengths['truncated_at_max_length']} "
                      f"example(s) longer than max_length {lengths['max_length']} will be truncated")
    elif tokenized:
        console.print(f"  {tokenized}")
    _show_memory_and_commands(console, report)


def _show_memory_and_commands(console: Console, report: dict) -> None:
    memory = report["memory"]
    console.print("\n[bold]Memory[/]")
    if "peak_memory_gb" in memory:
        console.print(f"  peak ~{memory['peak_memory_gb']:.2f} GB per device ({memory['trainable_params']:,} trainable of "
                      f"{memory['total_params']:,}); {_fit_text(memory)}")
        if memory.get("rollouts"):
            console.print(f"  {memory['rollouts']}", markup=False)
        for item in memory["suggestions"]:
            console.print(f"  - would fit with {item['change']}: {item['peak_memory_gb']:.1f} GB")
            _show_apply(console, item, memory)
        if memory.get("verdict"):
            console.print(f"  [red]{memory['verdict']}[/]")
    if memory.get("note"):
        console.print(f"  {memory['note']}")
    if report.get("batch"):
        console.print(f"\n[bold]Batch[/]: {report['batch']}", markup=True, highlight=False)
    if report.get("scoring"):
        console.print("\n[bold]Scoring[/]: ", end="", markup=True)
        console.print(report["scoring"], markup=False, highlight=False)
    console.print("\n[bold]Commands[/]")
    for name, command in report["commands"].items():
        console.print(f"  {name.replace('_', ' ')}: {command}", markup=False)


def show_run_summary(recipe, result, folder, err: bool = False) -> None:
    """What a run did, for any method: training figures, every evaluation figure (the one a bake-off ranks by in bold)."""
    console = make_console(err)
    metrics = result.metrics
    from adaptkit.methods.bakeoff import primary as ranked_by

    primary, _ = ranked_by(metrics)
    lines = [f"[bold]{escape(recipe.method)}[/] on {escape(recipe.model)} ({recipe.task}) -> [bold]{escape(str(folder))}[/]"]
    train = metrics.get("train") or {}
    stages = [(name, part) for name, part in train.items() if isinstance(part, dict) and "runtime_s" in part]  # not `resumed`
    parts = stages or ([("", train)] if train else [])
    for name, part in parts:
        steps = f"{part['steps']} steps of {part['global_batch']} examples, " if "global_batch" in part else ""
        if isinstance(part.get("resumed"), dict):
            steps += f"resumed from step {part['resumed']['from_step']}, "
        lines.append(f"{name.replace('_', ' ') + ': ' if name else ''}trained {part['runtime_s']:.1f} s, {steps}"
                     f"{part['samples_per_second']:.1f} samples/s, {part['trainable_params']:,} of {part['total_params']:,} "
                     f"parameters trainable, final loss {part['final_loss']:.4f}")
    if isinstance(metrics.get("resources"), dict):
        from adaptkit.runners.resources import summary

        lines.extend(escape(line) for line in summary(metrics["resources"]))
    if isinstance(metrics.get("distill"), dict):
        lines.extend(escape(line) for line in _distill_lines(metrics["distill"]))
    for name, part in metrics.items():  # what else a method reports (RAG: the index)
        if name not in ("method", "task", "train", "eval", "resources", "eval_data", "distill", "train_data") and isinstance(part, dict):
            lines.append(f"{name}: " + escape(", ".join(f"{k} {v}" for k, v in part.items() if not isinstance(v, (list, dict)))))
            lines.extend(f"  skipped {escape(str(item))}" for item in part.get("skipped", []))
    scalars, tables = [], []
    interval = (metrics.get("eval") or {}).get("interval") or {}
    for name, value in (metrics.get("eval") or {}).items():
        if name == "interval":
            continue
        if isinstance(value, dict):
            tables.append((name, value))
        elif isinstance(value, str) and len(value) > 60:  # a prompt the scorer used: in metrics.json, not the summary line
            scalars.append(escape(f"{name}: see metrics.json"))
        elif value is not None:
            text = f"{name} {_num(value) if isinstance(value, float) else value}"
            if interval.get("metric") == name:
                text += f" (95% interval {interval['low']:.4f}-{interval['high']:.4f} over {interval['rows']} rows)"
            scalars.append(f"[bold]{escape(text)}[/]" if name == primary or (primary == "neg_eval_loss" and name == "loss") else escape(text))
    if scalars or not tables:
        lines.append("eval: " + (", ".join(scalars) or "none (nothing is evaluated here)"))
    for name, table in tables:
        rows = [f"{k}: " + (", ".join(f"{kk} {_num(vv) if isinstance(vv, float) else vv}" for kk, vv in v.items())
                            if isinstance(v, dict) else (_num(v) if isinstance(v, float) else str(v))) for k, v in table.items()]
        if all(isinstance(v, dict) for v in table.values()):  # a table of rows (per class, per retrieval): a line each
            lines.append(f"  {name.replace('_', ' ')}:")
            lines.extend(f"    {escape(row)}" for row in rows)
        else:
            lines.append(f"  {name.replace('_', ' ')}: " + escape("; ".join(rows)))
    lines.append(f"files: {escape(', '.join(['metrics.json', 'recipe.yaml', *result.artifacts]))}")
    lines.extend(f"[bold yellow]warning:[/] {escape(text)}" for text in metrics.get("warnings", []))
    lines.extend(escape(line) for line in next_commands(recipe, folder))
    for line in lines:
        body = line.lstrip(" ")
        hanging(console, body, len(line) - len(body))


def _distill_lines(report: dict) -> list[str]:
    """Teacher against student: scores, cost per 1,000 requests, and when the student pays back."""
    metric, teacher, student = report["metric"], report["teacher"], report["student"]

    def money(value) -> str:
        return "unpriced" if value is None else f"${value:.4f} per 1,000 requests"

    def score(value) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    answers = teacher["training_answers"]
    lines = [f"teacher {teacher['model']}: {metric} {score(teacher.get(metric))} on {teacher.get('eval_rows')} eval rows, "
             f"{money(teacher['usd_per_1k_requests'])} ({teacher['price_basis']}); its training answers: {answers['kept']} of "
             f"{answers['answers']} kept (filter: {answers['filter']})",
             f"student {student['model']}: {metric} {score(student.get(metric))} (base {score(student.get('base'))}), "
             f"{money(student['usd_per_1k_requests'])} ({student['cost_basis']})"]
    if "student_keeps" in report:
        lines.append(f"  the student keeps {report['student_keeps']:.0%} of the teacher's {metric}")
    if report.get("break_even"):
        lines.append(f"  {report['break_even']}")
    return lines


def next_commands(recipe, folder) -> list[str]:
    """What to do with a finished run: predict on new rows, fold an adapter into its base, serve it."""
    import shlex

    if not recipe.definition.trains or recipe.adapter == "vendor":
        return []
    run = shlex.quote(str(folder))
    data = shlex.quote(str(recipe.data.eval or recipe.data.train or "ROWS.jsonl"))
    lines = ["next:", f"  adaptkit predict {run} {data} -o predictions.jsonl   # labels or answers for new rows"]
    if recipe.adapter in ("lora", "ia3"):
        lines.append(f"  adaptkit merge {run} -o {shlex.quote(str(folder) + '-merged')}   # one standalone model, no PEFT")
    if recipe.task == "image_classification":  # served text only
        return lines
    if recipe.task == "text_to_image":  # drawn with diffusers, as the README says
        return ["next:", f"  open {shlex.quote(str(folder) + '/samples.png')}   # held-out captions before (top) and after training",
                f"  adaptkit predict {run} PROMPTS.jsonl -o drawn.jsonl   # your prompts drawn into drawn_images/",
                f"  pipe.load_lora_weights({str(folder)!r})   # diffusers: see {shlex.quote(str(folder) + '/README.md')}"]
    if recipe.task == "image_text_to_text":
        lines.append(f"  adaptkit serve {run}   # OpenAI chat with image_url parts (data URLs)")
        return lines
    if recipe.task == "speech_recognition":
        lines.append(f"  adaptkit serve {run}   # POST /v1/audio/transcriptions (OpenAI's, a WAV file)")
        return lines
    lines.append(f"  adaptkit serve {run}   # " + ("an OpenAI-compatible HTTP endpoint" if recipe.task == "causal_lm" else
                                                   f"POST /classify {{\"model\": \"{Path(str(folder)).name}\", \"input\": [texts]}}"))
    return lines


def _num(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
