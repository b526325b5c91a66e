"""Cluster job files for a recipe: an sbatch script for SLURM and a SkyPilot task. Each runs `adaptkit run` on every
machine with that machine's rank, from the scheduler's own variables (SLURM_NODEID, SKYPILOT_NODE_RANK), machine 0
as the rendezvous, and resumes from the run's last complete checkpoint when the job comes back (a requeue, a
recovered spot instance). No torch is imported here.
"""

from __future__ import annotations

import getpass
import json
import re
import shlex
from pathlib import Path

from adaptkit.errors import InputError, one_line
from adaptkit.launch import Launch
from adaptkit.recipe.schema import Recipe
from adaptkit.rundir import pending_dir

SKY_RUNS = "/runs"  # where the SkyPilot task mounts its bucket: output_dir goes there
SKY_SOURCE = "/opt/adaptkit"  # where a clone of adaptkit is synced to on the nodes, when adaptkit runs from one


def _install() -> tuple[list[str], str]:
    """How the nodes get this adaptkit: the clone it runs from, synced and installed (as the README installs it), or
    the same release from the package index."""
    import adaptkit

    root = Path(adaptkit.__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "adaptkit").is_dir():
        return [f"  {SKY_SOURCE}: {json.dumps(str(root))}"], f"  pip install -e '{SKY_SOURCE}[train]'"  # JSON quoting is YAML's
    return [], f"  pip install 'adaptkit[train]=={adaptkit.__version__}'"


def _resume(out: str, indent: str = "") -> list[str]:
    """Shell lines setting RESUME to --resume when the run (or its pending replacement) holds a complete checkpoint,
    one level down included (a staged method's), as `adaptkit run --resume` looks for one."""
    final = Path(out)
    pending = pending_dir(final)
    folders = ['"$OUT"', f"{shlex.quote(str(pending.parent))}/{shlex.quote(pending.name)}"]
    globs = " ".join(f"{folder}{tail}" for folder in folders for tail in ("/checkpoint-*/trainer_state.json",
                                                                             "/*/checkpoint-*/trainer_state.json"))
    return [f"{indent}for checkpoint in {globs}; do",
            f'{indent}  if [ -e "$checkpoint" ]; then RESUME="--resume"; fi',
            f"{indent}done"]


def _name(recipe: Recipe) -> str:
    """A job name from the run folder's name: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", Path(recipe.output_dir).name.lower()).strip("-") or "run"


def _launch(recipe: Recipe, gpus: int, machines: int, port: int) -> Launch:
    """The job's launch, with the recipe's global batch split over every GPU as `run` will (said now, not on the cluster)."""
    from adaptkit.methods.base import split_batch

    t = recipe.training
    split_batch(t.batch_size, t.gradient_accumulation, t.batch_scope, gpus * machines)
    return Launch(processes=gpus * machines, machines=machines, main_ip="$MAIN_IP" if machines > 1 else None, main_port=port)


def _command(ref: str, overrides: tuple[str, ...], launch: Launch, rank: str, ip: str, extra: tuple[str, ...] = ()) -> str:
    """`adaptkit run` with this machine's rank and the main address as shell variables (double-quoted), RESUME unquoted
    (empty or --resume)."""
    fixed = shlex.join(["adaptkit", "run", ref, *overrides, *extra])
    return " ".join([fixed, *launch.flags(rank=f'"{rank}"', ip=f'"{ip}"'), "$RESUME"])


def slurm(recipe: Recipe, ref: str, overrides: tuple[str, ...], gpus: int, machines: int, *, port: int, time: str,
          partition: str | None = None) -> str:
    """An sbatch script: `machines` nodes of `gpus` GPUs, one task per node running adaptkit run (which launches a process
    per GPU); requeued jobs resume."""
    if not re.fullmatch(r"(\d+-)?\d+(:\d{1,2}){0,2}", time):
        raise InputError(f"--time {time}: give SLURM's format, e.g. 24:00:00, 90, or 2-00:00:00")
    launch = _launch(recipe, gpus, machines, port)
    name = _name(recipe)
    inner = _command(ref, overrides, launch, "$SLURM_NODEID", "$MAIN_IP")
    what = one_line(shlex.join(["adaptkit", "run", ref, *overrides]))
    lines = [
        "#!/bin/bash",
        f"# SLURM job for `{what}`: {machines} node(s) x {gpus} GPU(s), written by `adaptkit export --format slurm`.",
        "# Submit it from the folder the recipe's paths are relative to, in the environment adaptkit is installed in:",
        "#   sbatch THIS_FILE",
        "# A requeued job (preemption, node failure, scontrol requeue) resumes from the run's last complete checkpoint.",
        f"#SBATCH --job-name=adaptkit-{name}",
        f"#SBATCH --nodes={machines}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={gpus}",
        f"#SBATCH --time={time}",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output=adaptkit-{name}-%j.out",
        *([f"#SBATCH --partition={partition}"] if partition else []),
        "",
        "set -euo pipefail",
        "# machine 0 is the job's first node: the rendezvous, and the machine that writes the run",
        '# sed reads every line: `head -n 1` would leave scontrol a closed pipe (SIGPIPE, exit 141 under pipefail)',
        'MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)',
        f"OUT={shlex.quote(recipe.output_dir)}",
        'RESUME=""',
        'if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then',
        '  RESUME="--overwrite"  # requeued before any checkpoint: start again (it replaces only an adaptkit run)',
        *_resume(recipe.output_dir, "  "),
        "fi",
        "export MAIN_IP RESUME",
        "",
        "# one task per node, each with its own SLURM_NODEID as the machine rank",
        f"srun --kill-on-bad-exit=1 bash -c {shlex.quote(inner)}",
        "",
    ]
    return "\n".join(lines)


def gpu_choices(recipe: Recipe, gpus: int, machines: int, gpu: str | None = None) -> tuple[list, str]:
    """The GPUs to ask SkyPilot for: the given one, or the three cheapest on which the estimate fits the recipe (its
    sharding over every GPU), each with a line saying why."""
    from adaptkit.estimator.architectures import load_model
    from adaptkit.estimator.compute import find_gpu, gpu_table
    from adaptkit.estimator.memory import estimate_memory
    from adaptkit.estimator.report import TIGHT
    from adaptkit.methods.registry import recipe_setup
    from adaptkit.models import resolve_model

    if gpu:
        chosen = find_gpu(gpu)
        if not chosen.skypilot:
            raise InputError(f"--gpu {chosen.name}: SkyPilot's catalogue does not name it apart; choose another (e.g. H100)")
    try:
        peak = estimate_memory(load_model(resolve_model(recipe.model), online=False), recipe_setup(recipe, gpus * machines)).peak_gb
    except InputError as exc:
        if gpu:
            return [chosen], f"GPU: {chosen.name}, as asked (not sized: {exc})"
        raise InputError(f"cannot size {recipe.model} offline to choose the GPU ({exc}): pass --gpu NAME") from None
    if gpu:
        warn = "" if peak <= TIGHT * chosen.memory_gb else f"; the estimate (~{peak:.1f} GB per GPU) does not fit it with headroom"
        return [chosen], f"GPU: {chosen.name}, as asked{warn}"
    fitting = sorted((g for g in gpu_table().values() if g.skypilot and peak <= TIGHT * g.memory_gb), key=lambda g: g.hour_usd)
    if not fitting:
        raise InputError(f"~{peak:.1f} GB per GPU (the estimate, over {gpus * machines} GPU(s)) fits no listed GPU: shard it "
                         "(training.sharding=zero3), add GPUs or machines, or pass --gpu NAME")
    return fitting[:3], (f"GPUs: any of the three cheapest the estimate fits (~{peak:.1f} GB per GPU, with "
                         f"{1 - TIGHT:.0%} headroom); SkyPilot takes one it can get")


def skypilot(recipe: Recipe, ref: str, overrides: tuple[str, ...], gpus: int, machines: int, *, port: int,
             gpu: str | None = None, bucket: str | None = None) -> str:
    """A SkyPilot task: the GPUs the estimate fits, `machines` nodes, setup installing adaptkit, a bucket mounted at
    /runs for the run, and run calling adaptkit run with SkyPilot's node variables."""
    choices, why = gpu_choices(recipe, gpus, machines, gpu)
    bucket = bucket or re.sub(r"[^a-z0-9-]+", "-", f"adaptkit-runs-{getpass.getuser()}".lower())
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise InputError(f"--bucket {bucket}: a bucket name is 3-63 lowercase letters, digits, dots and dashes")
    name = _name(recipe)
    out = f"{SKY_RUNS}/{Path(recipe.output_dir).name or name}"
    launch = _launch(recipe, gpus, machines, port)
    command = _command(ref, overrides, launch, "$SKYPILOT_NODE_RANK", "$MAIN_IP", extra=(f"output_dir={out}",))
    source, install = _install()
    accelerators = ", ".join(f"{g.skypilot}: {gpus}" for g in choices)
    what = one_line(shlex.join(["adaptkit", "run", ref, *overrides]))
    lines = [
        f"# SkyPilot task for `{what}`: {machines} node(s) x {gpus} GPU(s), written by `adaptkit export --format skypilot`.",
        "# Launch it from the folder the recipe's paths are relative to (synced as the workdir):",
        "#   sky launch -c adaptkit THIS_FILE      or      sky jobs launch THIS_FILE   (recovers from preemption and resumes)",
        f"# {why}.",
        f"# The run is written to the bucket {bucket}, mounted at {SKY_RUNS}.",
        f"name: adaptkit-{name}",
        "resources:",
        f"  accelerators: {{{accelerators}}}",
        f"num_nodes: {machines}",
        "workdir: .",
        "file_mounts:",
        f"  {SKY_RUNS}:",
        f"    name: {bucket}",
        "    mode: MOUNT",
        *source,
        "setup: |",
        install,
        "run: |",
        "  set -euo pipefail",
        '  MAIN_IP=$(echo "$SKYPILOT_NODE_IPS" | sed -n 1p)  # machine 0: the rendezvous, and the machine that writes the run',
        f"  OUT={out}",
        '  RESUME=""',
        *_resume(out, "  "),
        f"  {command}",
        "",
    ]
    return "\n".join(lines)
