"""One estimate: model + setup + device -> memory, fit, suggestions, compute, time and cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from adaptkit.estimator.architectures import Architecture
from adaptkit.estimator.compute import GPUType, estimate_time
from adaptkit.estimator.fit import suggest
from adaptkit.estimator.memory import Setup, estimate_memory


@dataclass(frozen=True)
class Device:
    """The accelerator a job must fit on: memory per device, and its type when known (for time)."""

    memory_gb: float
    gpu: GPUType | None = None
    source: str = "given"
    kind: str = "cuda"  # cuda | rocm | mps (Apple silicon: its GPU's share of unified memory, no bitsandbytes)


APPLE = ["Apple silicon: the device is the GPU's share of unified memory (about 2/3 up to 36 GB, 3/4 above; the OS and "
         "other apps use the rest); PyTorch MPS trains in 16 bits only: no bitsandbytes 4-bit or 8-bit, one GPU"]


def find_device(gpu_name: str | None = None, gpu_memory_gb: float | None = None) -> tuple[Device | None, int]:
    """(the device to fit, the detected GPU count) from --gpu, --gpu-memory-gb or what this machine has."""
    from adaptkit.errors import InputError
    from adaptkit.estimator.compute import find_gpu
    from adaptkit.estimator.hardware import detect_gpus

    if gpu_memory_gb is not None and gpu_memory_gb <= 0:
        raise InputError("--gpu-memory-gb must be above 0")
    if gpu_name:
        gpu = find_gpu(gpu_name)
        return Device(gpu_memory_gb or gpu.memory_gb, gpu, "--gpu"), 0
    gpus, how = detect_gpus()
    if gpu_memory_gb is not None:
        gpu = find_gpu(gpus[0].name, strict=False) if gpus else None
        return Device(gpu_memory_gb, gpu, "--gpu-memory-gb"), len(gpus)
    if gpus:
        return (Device(min(g.memory_gb for g in gpus), find_gpu(gpus[0].name, strict=False), f"detected by {how}", gpus[0].kind),
                len(gpus))
    return None, 0


TIGHT = 0.85  # a peak above this share of the device's memory fits only if the estimate (+-20%) is not low: say so


def estimate(arch: Architecture, setup: Setup, device: Device | None, tokens: float | None = None,
             gpu_hour_usd: float | None = None, tokens_per_second: float | None = None) -> dict:
    """The `adaptkit estimate --json` answer."""
    setup = setup.resolved(arch)
    memory = estimate_memory(arch, setup)
    fits = None if device is None else memory.peak_gb <= device.memory_gb
    tight = bool(fits) and memory.peak_gb > TIGHT * device.memory_gb  # fits, but inside the estimate's error band
    suggestions, verdict = ([], None)
    if device is not None and (not fits or tight):
        changes, verdict = suggest(arch, setup, (TIGHT if tight else 1.0) * device.memory_gb, device.kind)
        suggestions = [c.to_dict() for c in changes]
    unet = arch.kind == "unet"  # a FLOP per parameter and token does not describe a UNet's convolutions: no compute figure
    timing = estimate_time(arch, setup, None if unet else tokens, device.gpu if device else None, gpu_hour_usd, tokens_per_second)
    if unet and tokens:
        timing.assumptions.append("compute and time are not modeled for a diffusion UNet (its FLOPs follow the convolutions, "
                                  "not 6 x parameters x tokens): time a few steps with adaptkit run")
    return {
        "model": arch.name,
        "method": setup.method,
        "tight": tight,
        "setup": {k: v for k, v in asdict(setup).items() if k != "method"},
        "total_params": memory.total_params,
        "active_params": arch.active_params,
        "trainable_params": memory.trainable_params,
        "peak_memory_gb": round(memory.peak_gb, 2),
        "allocated_gb": round(memory.allocated_gb, 2),
        "breakdown": memory.breakdown,
        "fits": fits,
        "device_memory_gb": None if device is None else device.memory_gb,
        "device": None if device is None else (device.gpu.name if device.gpu else f"{device.memory_gb:g} GB device") + f" ({device.source})",
        "verdict": verdict,
        "train_flops": timing.train_flops,
        "estimated_hours": timing.hours,
        "estimated_cost_usd": timing.cost_usd,
        "assumptions": memory.assumptions + timing.assumptions + (APPLE if device is not None and device.kind == "mps" else []),
        "suggestions": suggestions,
    }
