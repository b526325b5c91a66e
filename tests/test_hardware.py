import pytest

from adaptkit.errors import InputError
from adaptkit.estimator import hardware
from adaptkit.estimator.hardware import GPU, detect_gpus, parse_nvidia_smi


def test_parse_nvidia_smi():
    text = "NVIDIA A100-SXM4-80GB, 81920\nNVIDIA GeForce RTX 4090, 24564\n"
    assert parse_nvidia_smi(text) == [GPU("NVIDIA A100-SXM4-80GB", 85.9), GPU("NVIDIA GeForce RTX 4090", 25.8)]
    assert parse_nvidia_smi("") == [] and parse_nvidia_smi("garbage, [N/A]\n") == []


def test_no_gpu_is_a_normal_answer(monkeypatch):
    monkeypatch.delenv("ADAPTKIT_FAKE_GPUS")
    monkeypatch.setattr(hardware.shutil, "which", lambda name: None)
    monkeypatch.setattr(hardware.ctypes, "CDLL", lambda name: (_ for _ in ()).throw(OSError(name)))
    monkeypatch.setattr(hardware, "_from_amd_sysfs", lambda: None)
    monkeypatch.setattr(hardware, "_apple_silicon", lambda: None)
    assert detect_gpus() == ([], "none")


def test_nvidia_smi_is_used_when_present(monkeypatch):
    monkeypatch.delenv("ADAPTKIT_FAKE_GPUS")
    monkeypatch.setattr(hardware.shutil, "which", lambda name: "/usr/bin/nvidia-smi")

    class Done:
        stdout = "NVIDIA L4, 23034\n"

    monkeypatch.setattr(hardware.subprocess, "run", lambda *a, **k: Done())
    gpus, how = detect_gpus()
    assert how == "nvidia-smi" and gpus[0].name == "NVIDIA L4" and gpus[0].memory_gb == pytest.approx(24.2)


def test_fake_gpus(monkeypatch):
    monkeypatch.setenv("ADAPTKIT_FAKE_GPUS", "4x80")
    assert detect_gpus() == ([GPU("fake GPU", 80.0)] * 4, "ADAPTKIT_FAKE_GPUS")
    monkeypatch.setenv("ADAPTKIT_FAKE_GPUS", "lots")
    with pytest.raises(InputError, match="COUNTxGB"):
        detect_gpus()


AMD_SMI = """[{"gpu": 0, "asic": {"market_name": "AMD Instinct MI300X", "vendor_id": "0x1002"},
  "vram": {"type": "HBM3", "size": {"value": 196592, "unit": "MB"}}},
 {"gpu": 1, "asic": {"market_name": "AMD Instinct MI300X"}, "vram": {"size": "196592 MB"}}]"""
ROCM_SMI = """{"card0": {"Card Series": "AMD Instinct MI210", "VRAM Total Memory (B)": "68702699520",
  "VRAM Total Used Memory (B)": "10960896"}, "system": {"Driver version": "6.3.6"}}"""


def test_amd_tools_are_read():
    assert hardware.parse_amd_smi(AMD_SMI) == [GPU("AMD Instinct MI300X", 206.1, "rocm")] * 2
    assert hardware.parse_rocm_smi(ROCM_SMI) == [GPU("AMD Instinct MI210", 68.7, "rocm")]
    assert hardware.parse_amd_smi("[]") == [] and hardware.parse_rocm_smi("{}") == []


def _no_nvidia(monkeypatch):
    monkeypatch.delenv("ADAPTKIT_FAKE_GPUS")
    monkeypatch.setattr(hardware, "_from_nvidia_smi", lambda: None)
    monkeypatch.setattr(hardware, "_from_nvml", lambda: None)


def test_amd_smi_is_used_when_present(monkeypatch):
    _no_nvidia(monkeypatch)
    monkeypatch.setattr(hardware.shutil, "which", lambda name: f"/opt/rocm/bin/{name}" if name == "amd-smi" else None)

    class Done:
        stdout = AMD_SMI

    monkeypatch.setattr(hardware.subprocess, "run", lambda *a, **k: Done())
    gpus, how = detect_gpus()
    assert how == "amd-smi" and len(gpus) == 2 and gpus[0].kind == "rocm"


def test_amdgpu_sysfs_without_any_tool(monkeypatch, tmp_path):
    for card, vendor, size in (("card0", "0x1002", 25753026560), ("card1", "0x8086", 0)):
        device = tmp_path / card / "device"
        device.mkdir(parents=True)
        (device / "vendor").write_text(vendor + "\n")
        (device / "device").write_text("0x744c\n")
        (device / "mem_info_vram_total").write_text(f"{size}\n")
    assert hardware._from_amd_sysfs(str(tmp_path)) == [GPU("AMD GPU 0x744c", 25.8, "rocm")]  # the Intel card is not counted
    assert hardware._from_amd_sysfs(str(tmp_path / "none")) is None


@pytest.mark.parametrize("unified, usable", [(16, 10.7), (64, 48.0)])
def test_apple_silicon_is_one_gpu_with_a_share_of_unified_memory(monkeypatch, unified, usable):
    _no_nvidia(monkeypatch)
    monkeypatch.setattr(hardware.shutil, "which", lambda name: None)
    monkeypatch.setattr(hardware, "_from_amd_sysfs", lambda: None)
    monkeypatch.setattr(hardware, "_apple_silicon", lambda: {"chip": "Apple M3 Max", "unified_memory_gb": unified, "backend": "mps"})
    gpus, how = detect_gpus()
    assert gpus == [GPU(f"Apple M3 Max ({unified} GB unified)", usable, "mps")] and "unified memory" in how


def test_fake_gpu_kinds(monkeypatch):
    monkeypatch.setenv("ADAPTKIT_FAKE_GPUS", "1x48:mps")
    assert detect_gpus()[0] == [GPU("fake GPU", 48.0, "mps")]
    monkeypatch.setenv("ADAPTKIT_FAKE_GPUS", "2x24:tpu")
    with pytest.raises(InputError, match="1x64:mps"):
        detect_gpus()


def test_apple_silicon_gets_only_what_runs_there(invoke, monkeypatch):
    """QLoRA, 8-bit optimizers, Liger and more GPUs are CUDA/ROCm or multi-GPU paths: never suggested for MPS."""
    import json

    args = ("estimate", "--method", "lora_adapters", "--model", "Qwen/Qwen2.5-7B", "--seq-len", "4096", "--json")
    monkeypatch.setenv("ADAPTKIT_FAKE_GPUS", "1x16")
    cuda = json.loads(invoke(*args).stdout)
    monkeypatch.setenv("ADAPTKIT_FAKE_GPUS", "1x16:mps")
    mps = json.loads(invoke(*args).stdout)
    assert any("4-bit" in s["change"] for s in cuda["suggestions"])
    text = " ".join(s["change"] for s in mps["suggestions"]) + (mps["verdict"] or "")
    assert "4-bit" not in text.replace("4-bit QLoRA and 8-bit optimizers need", "") and "8-bit AdamW" not in text and "GPUs" not in text
    assert any("Apple silicon" in line for line in mps["assumptions"])
    answers = ["--set", "task=classification", "--set", "goal=behavior", "--set", "weight_access=open",
               "--set", "model=Qwen/Qwen2.5-7B", "--set", "labeled_examples=2k", "--no-input", "--json"]
    advice = json.loads(invoke("advise", *answers).stdout)
    assert advice["profile"]["gpu_kind"] == "mps" and advice["profile"]["gpu_vram_gb"] == 16
    said = json.dumps([advice["ruled_out"], advice["recommendations"]]).replace("(4-bit QLoRA and 8-bit optimizers need bitsandbytes", "")
    assert "QLoRA" not in said and "would fit as" not in said
