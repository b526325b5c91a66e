"""`adaptkit hardware`: what this machine can train on."""

from __future__ import annotations

import json

import click


@click.command("hardware")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def hardware(as_json):
    """Show GPUs, Apple silicon, CPU cores, RAM, free disk and the installed training stack (no torch import)."""
    from adaptkit.estimate.hardware import system_info

    info = system_info()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    if info["gpus"]:
        for index, gpu in enumerate(info["gpus"]):
            click.echo(f"GPU {index}: {gpu['name']}, {gpu['memory_gb']:g} GB (via {info['gpu_detection']})")
    else:
        click.echo("GPU: none found (nvidia-smi and NVML absent or empty): training runs on the CPU")
    if info["apple_silicon"]:
        chip = info["apple_silicon"]
        click.echo(f"Apple silicon: {chip['chip']}, {chip['unified_memory_gb']} GB unified memory (PyTorch MPS)")
    click.echo(f"CPU cores: {info['cpu_cores']}   RAM: {info['ram_gb']} GB   free disk here: {info['disk_free_gb']} GB")
    packages = info["packages"]
    stack = ", ".join(f"{name} {version}" for name, version in packages.items() if version and name != "torch_cuda")
    click.echo(f"training stack: {stack or 'not installed (pip install adaptkit[train])'}")
    if packages["torch"]:
        click.echo(f"torch CUDA build: {packages['torch_cuda'] or 'unknown'}")
