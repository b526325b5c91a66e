"""Detect GPUs without importing torch: nvidia-smi first, then NVML through ctypes."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from dataclasses import dataclass

from adaptkit.errors import InputError


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float  # total memory, in GB (10^9 bytes)


def parse_nvidia_smi(text: str) -> list[GPU]:
    """Parse `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits` (MiB)."""
    gpus = []
    for line in text.strip().splitlines():
        name, _, mib = line.rpartition(",")
        try:
            gpus.append(GPU(name=name.strip(), memory_gb=round(float(mib) * 2**20 / 1e9, 1)))
        except ValueError:
            continue
    return gpus


def _from_nvidia_smi() -> list[GPU] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi(out)


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def _from_nvml() -> list[GPU] | None:
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    try:
        if nvml.nvmlInit_v2() != 0:
            return None
        count = ctypes.c_uint()
        if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return None
        gpus = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            name = ctypes.create_string_buffer(96)
            memory = _Memory()
            if nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                continue
            nvml.nvmlDeviceGetName(handle, name, 96)
            nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory))
            gpus.append(GPU(name=name.value.decode(errors="replace"), memory_gb=round(memory.total / 1e9, 1)))
        nvml.nvmlShutdown()
        return gpus
    except (AttributeError, OSError):
        return None


def detect_gpus() -> tuple[list[GPU], str]:
    """Return (GPUs, how they were found). No GPU is a normal answer: ([], 'none').

    ADAPTKIT_FAKE_GPUS="2x24" (count x GB) pretends, for demos and tests.
    """
    fake = os.environ.get("ADAPTKIT_FAKE_GPUS")
    if fake is not None:
        if not fake.strip() or fake.strip() == "0":
            return [], "ADAPTKIT_FAKE_GPUS"
        count, _, gigabytes = fake.lower().partition("x")
        try:
            return [GPU("fake GPU", float(gigabytes))] * int(count), "ADAPTKIT_FAKE_GPUS"
        except ValueError:
            raise InputError(f"ADAPTKIT_FAKE_GPUS={fake!r}: write COUNTxGB, like 2x24") from None
    for probe, label in ((_from_nvidia_smi, "nvidia-smi"), (_from_nvml, "nvml")):
        found = probe()
        if found:
            return found, label
    return [], "none"


def _ram_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) * 1024 / 1e9, 1)
    except OSError:
        pass
    try:  # macOS
        out = subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True, timeout=5).stdout
        return round(int(out.strip()) / 1e9, 1)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _apple_silicon() -> dict | None:
    import platform
    import sys

    if sys.platform != "darwin" or platform.machine() != "arm64":
        return None
    try:
        chip = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        chip = "Apple silicon"
    return {"chip": chip, "unified_memory_gb": _ram_gb(), "backend": "mps"}


def _package_versions() -> dict:
    """Installed versions of the training stack, read from package metadata (nothing is imported)."""
    from importlib import metadata

    versions = {}
    for name in ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes", "deepspeed"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cuda = None
    torch_version = versions["torch"] or ""
    if "+cu" in torch_version:
        digits = torch_version.split("+cu", 1)[1]
        cuda = f"{digits[:-1]}.{digits[-1]}" if digits.isdigit() and len(digits) >= 3 else digits
    elif "+cpu" in torch_version:
        cuda = "none (CPU build)"
    else:
        for runtime in ("nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu13", "nvidia-cuda-runtime", "nvidia-cuda-runtime-cu11"):
            try:
                cuda = metadata.version(runtime)
                break
            except metadata.PackageNotFoundError:
                continue
    versions["torch_cuda"] = cuda
    return versions


def system_info() -> dict:
    """Everything `adaptkit hardware` reports; no GPU is a normal answer."""
    gpus, detection = detect_gpus()
    usage = shutil.disk_usage(os.getcwd())
    return {
        "gpus": [{"name": g.name, "memory_gb": g.memory_gb} for g in gpus],
        "gpu_count": len(gpus),
        "gpu_detection": detection,
        "apple_silicon": _apple_silicon(),
        "cpu_cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "disk_free_gb": round(usage.free / 1e9, 1),
        "packages": _package_versions(),
    }
