"""`adaptkit export RECIPE --format script`: the recipe as code you can read, paste and change, or as a cluster job."""

from __future__ import annotations

import click

from adaptkit.cli._io import write_new
from adaptkit.errors import InputError
from adaptkit.launch import DEFAULT_PORT


@click.command("export")
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["script", "accelerate", "trl", "slurm", "skypilot", "onnx", "gguf", "gptq", "awq",
                                                           "vllm"]),
              default="script", show_default=True,
              help="Of a recipe: script (a standalone Python file, no adaptkit import), accelerate (config files and launch "
                   "commands; -o is a folder), trl (a config for the TRL command line), slurm (an sbatch script), skypilot "
                   "(a SkyPilot task). Of a finished run (RUN instead of RECIPE; -o is a new folder): onnx (a classifier, "
                   "scored with ONNX Runtime against the trained model), gguf (a causal LM for llama.cpp and Ollama, "
                   "scored with llama.cpp), gptq or awq (a causal LM's weights in 4 or 8 bits for vLLM, by llm-compressor; awq "
                   "needs a CUDA GPU), vllm (the serve command and a client; more RUNs "
                   "after the first: LoRA adapters served on one base).")
@click.option("-o", "--output", type=click.Path(), help="Write to this file (a folder for accelerate; default: print).")
@click.option("--gpus", type=click.IntRange(min=1), default=8, show_default=True, help="accelerate, slurm, skypilot: GPUs per machine.")
@click.option("--machines", type=click.IntRange(min=1), default=1, show_default=True, help="accelerate, slurm, skypilot: machines.")
@click.option("--main-process-port", "port", type=click.IntRange(min=1, max=65535), default=DEFAULT_PORT, show_default=True,
              help="slurm, skypilot: the rendezvous port on machine 0.")
@click.option("--time", "time_limit", default="24:00:00", show_default=True, help="slurm: the job's time limit.")
@click.option("--partition", help="slurm: the partition to submit to (default: the cluster's).")
@click.option("--gpu", "gpu_name", metavar="NAME", help="skypilot: this GPU type (default: the cheapest the estimate fits).")
@click.option("--bucket", help="skypilot: the bucket mounted at /runs for the run (default: adaptkit-runs-USER).")
@click.option("--quant", type=click.Choice(["none", "int8", "f16", "q8_0", "q4_k_m", "w4a16", "w8a16"]),
              help="onnx: none or int8 (ONNX Runtime's dynamic quantization; default none); gguf: f16, q8_0 or q4_k_m "
                   "(llama.cpp's quantizer; default q8_0); gptq, awq: w4a16 or w8a16 (default w4a16). Checked like the rest.")
@click.option("--max-drop", type=click.FloatRange(min=0), default=0.01, show_default=True,
              help="onnx, gguf, gptq, awq: the largest fall of the run's primary metric the export may show before it is flagged.")
@click.option("--json", "as_json", is_flag=True, help="onnx, gguf, gptq, awq, vllm: print the report as JSON.")
@click.option("--force", is_flag=True, help="Replace existing output files.")
def export(recipe, overrides, fmt, output, gpus, machines, port, time_limit, partition, gpu_name, bucket, quant, max_drop, as_json,
           force):
    """Export RECIPE (with optional KEY=VALUE overrides) as a script, accelerate configs, a TRL CLI config, or a
    cluster job (slurm, skypilot) that runs it on every machine and resumes when the job comes back; or a finished
    RUN as ONNX, GGUF, GPTQ/AWQ weights or a vLLM server, the copy scored against the trained model on the run's eval rows.

    \b
      adaptkit export lora_cls -o train.py
      adaptkit export cpt --format slurm --machines 2 --gpus 8 -o cpt.sbatch
      adaptkit export cpt --format skypilot --machines 2 --gpus 8 -o cpt.sky.yaml
      adaptkit export runs/tickets --format onnx -o tickets-onnx
      adaptkit export runs/answers --format gguf --quant q4_k_m -o answers-gguf
      adaptkit export runs/answers --format gptq -o answers-w4a16
      adaptkit export runs/support runs/billing --format vllm -o vllm
    """
    from pathlib import Path

    if fmt in ("onnx", "gguf", "gptq", "awq", "vllm"):
        _deploy(fmt, recipe, overrides, output, quant, max_drop, as_json)
        return

    from adaptkit.recipe.export import accelerate_configs, script, trl_command, trl_config
    from adaptkit.recipe.load import load_recipe

    if fmt in ("slurm", "skypilot"):
        from adaptkit.api import cluster_job

        text = cluster_job(recipe, overrides, format=fmt, gpus=gpus, machines=machines, main_process_port=port, time=time_limit,
                           partition=partition, gpu=gpu_name, bucket=bucket)
        if output:
            write_new(output, text, force=force)
            submit = f"sbatch {output}" if fmt == "slurm" else f"sky launch -c adaptkit {output}"
            click.echo(f"wrote {output}; submit it with: {submit}", err=True)
        else:
            click.echo(text, nl=False)
        return
    from adaptkit.rundir import refuse_finished_run

    refuse_finished_run(recipe, fmt)
    loaded, _, _ = load_recipe(recipe, overrides)
    if fmt == "accelerate":
        files = accelerate_configs(loaded, recipe, gpus, machines)
        if not output:
            for name, text in files.items():
                click.echo(f"==> {name} <==\n{text}")
            return
        from adaptkit.rundir import check_location

        folder = Path(output).expanduser()
        check_location(folder, "-o")
        clashes = [name for name in files if (folder / name).exists()]
        if clashes and not force:  # check every file first: never write half of the set
            raise InputError(f"{folder / clashes[0]} already exists ({len(clashes)} of the {len(files)} files): "
                             "choose another folder or pass --force to replace them")
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write_new(folder / name, text, force=True)
        click.echo(f"wrote {', '.join(files)} to {folder}; see {folder / 'LAUNCH.md'}", err=True)
        return
    text = trl_config(loaded, recipe) if fmt == "trl" else script(loaded, recipe, output or "train.py")
    if output:
        write_new(output, text, force=force)
        run = f"trl {trl_command(loaded)} --config {output}" if fmt == "trl" else f"python {output}"
        click.echo(f"wrote {output}; run it with: {run}", err=True)
    else:
        click.echo(text)


def _deploy(fmt: str, run_dir: str, more: tuple[str, ...], output: str | None, quant: str | None, max_drop: float,
            as_json: bool) -> None:
    """A finished run as a deployable artifact in a new folder, with what the check measured."""
    import json

    if not output:
        raise InputError(f"--format {fmt} writes a folder: give it with -o DIR")
    from adaptkit.api import export_run

    report = export_run([run_dir, *more], output, format=fmt, quant=quant, max_drop=max_drop,
                        log=lambda line: click.echo(line, err=True))
    if fmt == "vllm":
        if as_json:
            click.echo(json.dumps(report, indent=2))
            return
        click.echo(f"wrote {report['folder']}: serve.sh, client.py, README.md\n{report['serve']}\n{report['note']}")
        return
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from adaptkit.cli.render import make_console

    metric, trained, exported = report["metric"], report["trained"], report["exported"]
    console = make_console()
    console.print(f"wrote {output}: {report['artifact']} ({exported['size_mb']:.1f} MB; the trained model {trained['size_mb']:.1f} MB)",
                  markup=False)
    runtime = report["runtime"]
    same = "label" if fmt == "onnx" else "answer"
    close = (f"; probabilities within {report['max_probability_difference']:.2g}" if "max_probability_difference" in report else "")
    console.print(f"on the run's {report['rows']} eval rows: {metric} {exported[metric]:.4f} ({runtime}) vs {trained[metric]:.4f} "
                  f"(trained), {report['difference']:+.4f}; the same {same} on {report['agreement']:.1%} of rows{close}", markup=False)
    console.print(f"latency: {exported['ms_per_row']:.2f} ms a row ({runtime}) vs {trained['ms_per_row']:.2f} ms (PyTorch) on "
                  "this machine", markup=False)
    if "serve" in report:
        console.print(f"serve it: {report['serve']}", markup=False)
    if not report["within_threshold"]:
        console.print(f"[red]the export loses {-report['difference']:.4f} {metric}, more than --max-drop {report['max_drop']}[/]")
