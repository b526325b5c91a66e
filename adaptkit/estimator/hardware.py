"""Detect accelerators without importing torch: NVIDIA (nvidia-smi, then NVML through ctypes), AMD (amd-smi, then
rocm-smi, then the amdgpu driver's sysfs files) and Apple silicon (sysctl: one GPU sharing the machine's memory)."""

from __future__ import annotations

import ctypes
import glob
import json
import os
import shutil
import subprocess
from dataclasses import dataclass

from adaptkit.errors import InputError


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float  # memory a job can use, in GB (10^9 bytes): the card's own, or Apple's GPU share of unified memory
    kind: str = "cuda"  # cuda (NVIDIA) | rocm (AMD; PyTorch's ROCm build answers as CUDA) | mps (Apple silicon)


# Metal lets the GPU wire about 2/3 of unified memory on machines up to 36 GB and 3/4 above (its
# recommendedMaxWorkingSetSize); the OS and every other app share the rest.
def apple_gpu_share(unified_gb: float) -> float:
    return 0.67 if unified_gb <= 36 else 0.75


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


def _amd_bytes(value) -> float | None:
    """A memory figure from amd-smi / rocm-smi JSON: bytes as a number or string, {"value": N, "unit": "MB"}, or "N MB"."""
    units = {"b": 1, "kb": 1e3, "mb": 2**20, "mib": 2**20, "gb": 2**30, "gib": 2**30}
    if isinstance(value, dict):
        value = f"{value.get('value')} {value.get('unit', 'B')}"
    try:
        number, _, unit = str(value).strip().partition(" ")
        return float(number) * units.get(unit.strip().lower() or "b", 1)
    except ValueError:
        return None


def parse_amd_smi(text: str) -> list[GPU]:
    """Parse `amd-smi static --asic --vram --json` (a list of GPUs, or {"gpu_data": [...]} in some versions)."""
    data = json.loads(text)
    entries = data.get("gpu_data", []) if isinstance(data, dict) else data
    gpus = []
    for entry in entries if isinstance(entries, list) else []:
        name = (entry.get("asic") or {}).get("market_name") or "AMD GPU"
        size = _amd_bytes((entry.get("vram") or {}).get("size"))
        if size:
            gpus.append(GPU(name=str(name).strip(), memory_gb=round(size / 1e9, 1), kind="rocm"))
    return gpus


def parse_rocm_smi(text: str) -> list[GPU]:
    """Parse `rocm-smi --showproductname --showmeminfo vram --json` ({"card0": {...}, ...})."""
    gpus = []
    for card, fields in sorted(json.loads(text).items()):
        if not card.startswith("card") or not isinstance(fields, dict):
            continue
        size = _amd_bytes(fields.get("VRAM Total Memory (B)"))
        name = fields.get("Card Series") or fields.get("Card series") or fields.get("Card SKU") or "AMD GPU"
        if size:
            gpus.append(GPU(name=str(name).strip(), memory_gb=round(size / 1e9, 1), kind="rocm"))
    return gpus


def _run_json(command: list[str], parse) -> list[GPU] | None:
    exe = shutil.which(command[0])
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *command[1:]], capture_output=True, text=True, timeout=10, check=True).stdout
        return parse(out)
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError, TypeError):
        return None


def _from_amd_sysfs(root: str = "/sys/class/drm") -> list[GPU] | None:
    """AMD GPUs from the amdgpu driver's files (vendor 0x1002, mem_info_vram_total), when no AMD tool is installed."""
    gpus = []
    for device in sorted(glob.glob(os.path.join(root, "card[0-9]*", "device"))):
        try:
            with open(os.path.join(device, "vendor"), encoding="ascii") as handle:
                if handle.read().strip() != "0x1002":
                    continue
            with open(os.path.join(device, "mem_info_vram_total"), encoding="ascii") as handle:
                size = int(handle.read().strip())
            with open(os.path.join(device, "device"), encoding="ascii") as handle:
                model = handle.read().strip()
        except (OSError, ValueError):
            continue
        gpus.append(GPU(name=f"AMD GPU {model}", memory_gb=round(size / 1e9, 1), kind="rocm"))
    return gpus or None


def _from_apple() -> list[GPU] | None:
    chip = _apple_silicon()
    if not chip or not chip["unified_memory_gb"]:
        return None
    total = chip["unified_memory_gb"]
    return [GPU(name=f"{chip['chip']} ({total:g} GB unified)", memory_gb=round(total * apple_gpu_share(total), 1), kind="mps")]


def _probes() -> tuple:
    """Each way to find accelerators, in order; the first that finds any answers (built per call: tests replace one)."""
    return (
        (_from_nvidia_smi, "nvidia-smi"),
        (_from_nvml, "nvml"),
        (lambda: _run_json(["amd-smi", "static", "--asic", "--vram", "--json"], parse_amd_smi), "amd-smi"),
        (lambda: _run_json(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json"], parse_rocm_smi), "rocm-smi"),
        (_from_amd_sysfs, "amdgpu sysfs"),
        (_from_apple, "sysctl (Apple silicon: the GPU's share of unified memory)"),
    )


def detect_gpus() -> tuple[list[GPU], str]:
    """Return (GPUs, how they were found). No GPU is a normal answer: ([], 'none').

    ADAPTKIT_FAKE_GPUS="2x24" (count x GB, optionally ":rocm" or ":mps") pretends, for demos and tests.
    """
    fake = os.environ.get("ADAPTKIT_FAKE_GPUS")
    if fake is not None:
        if not fake.strip() or fake.strip() == "0":
            return [], "ADAPTKIT_FAKE_GPUS"
        shape, _, kind = fake.lower().partition(":")
        count, _, gigabytes = shape.partition("x")
        try:
            if kind not in ("", "cuda", "rocm", "mps"):
                raise ValueError(kind)
            return [GPU("fake GPU", float(gigabytes), kind or "cuda")] * int(count), "ADAPTKIT_FAKE_GPUS"
        except ValueError:
            raise InputError(f"ADAPTKIT_FAKE_GPUS={fake!r}: write COUNTxGB, like 2x24 (or 1x64:mps, 2x192:rocm)") from None
    for probe, label in _probes():
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
        "gpus": [{"name": g.name, "memory_gb": g.memory_gb, "kind": g.kind} for g in gpus],
        "gpu_count": len(gpus),
        "gpu_detection": detection,
        "apple_silicon": _apple_silicon(),
        "cpu_cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "disk_free_gb": round(usage.free / 1e9, 1),
        "packages": _package_versions(),
    }
