"""`adaptkit hardware`: what this machine can train on."""

from __future__ import annotations

import json

import click


@click.command("hardware")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def hardware(as_json):
    """Show GPUs (NVIDIA, AMD, Apple silicon), CPU cores, RAM, free disk and the installed training stack (no torch import)."""
    from adaptkit.estimator.hardware import system_info

    info = system_info()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    kinds = {"cuda": "CUDA", "rocm": "ROCm", "mps": "PyTorch MPS; the GPU's share of unified memory"}
    if info["gpus"]:
        for index, gpu in enumerate(info["gpus"]):
            click.echo(f"GPU {index}: {gpu['name']}, {gpu['memory_gb']:g} GB ({kinds[gpu['kind']]}; via {info['gpu_detection']})")
    else:
        click.echo("GPU: none found (nvidia-smi, NVML, amd-smi, rocm-smi, amdgpu and Apple silicon checked): training runs on the CPU")
    if info["apple_silicon"] and not info["gpus"]:
        chip = info["apple_silicon"]
        click.echo(f"Apple silicon: {chip['chip']}, {chip['unified_memory_gb']} GB unified memory (PyTorch MPS)")
    click.echo(f"CPU cores: {info['cpu_cores']}   RAM: {info['ram_gb']} GB   free disk here: {info['disk_free_gb']} GB")
    packages = info["packages"]
    stack = ", ".join(f"{name} {version}" for name, version in packages.items() if version and name != "torch_cuda")
    click.echo(f"training stack: {stack or 'not installed (pip install adaptkit[train])'}")
    if packages["torch"]:
        click.echo(f"torch CUDA build: {packages['torch_cuda'] or 'unknown'}")
