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
