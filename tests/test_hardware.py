import pytest

from adaptkit.errors import InputError
from adaptkit.estimate import hardware
from adaptkit.estimate.hardware import GPU, detect_gpus, parse_nvidia_smi


def test_parse_nvidia_smi():
    text = "NVIDIA A100-SXM4-80GB, 81920\nNVIDIA GeForce RTX 4090, 24564\n"
    assert parse_nvidia_smi(text) == [GPU("NVIDIA A100-SXM4-80GB", 85.9), GPU("NVIDIA GeForce RTX 4090", 25.8)]
    assert parse_nvidia_smi("") == [] and parse_nvidia_smi("garbage, [N/A]\n") == []


def test_no_gpu_is_a_normal_answer(monkeypatch):
    monkeypatch.delenv("ADAPTKIT_FAKE_GPUS")
    monkeypatch.setattr(hardware.shutil, "which", lambda name: None)
    monkeypatch.setattr(hardware.ctypes, "CDLL", lambda name: (_ for _ in ()).throw(OSError(name)))
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
