"""Answers files and values: every bad-input class gives one clear line."""

import json

import pytest

from adaptkit.advisor.profile import build_profile, infer_from_model_name, read_answers, resolve
from adaptkit.errors import InputError
from adaptkit.estimator.hardware import GPU
from adaptkit.units import parse_count, parse_gigabytes, parse_number, parse_params_b

BASE = {"task": "classification", "goal": "behavior", "weight_access": "open"}


@pytest.mark.parametrize("parse, text, expected", [
    (parse_number, "2k", 2000), (parse_number, "1.5M", 1.5e6), (parse_number, "$5,000", 5000), (parse_number, "1e4", 10000),
    (parse_number, 12, 12), (parse_count, "10_000", 10000), (parse_params_b, "7B", 7), (parse_params_b, "770M", 0.77),
    (parse_params_b, "7", 7), (parse_params_b, 13, 13), (parse_gigabytes, "24GB", 24), (parse_gigabytes, "80 GiB", 80),
])
def test_numbers(parse, text, expected):
    assert parse(text) == pytest.approx(expected)


@pytest.mark.parametrize("parse, text", [(parse_number, "lots"), (parse_count, "2.5"), (parse_number, True), (parse_number, "")])
def test_bad_numbers(parse, text):
    with pytest.raises(ValueError):
        parse(text)


def test_human_numbers_in_answers():
    profile = build_profile({**BASE, "labeled_examples": "2k", "model_params_b": "7B", "gpu_vram_gb": "24GB", "num_gpus": 1,
                             "budget_usd": "$1.5k"})
    assert (profile.labeled_examples, profile.model_params_b, profile.gpu_vram_gb, profile.budget_usd) == (2000, 7, 24, 1500)


# (bad-input class, answers, words the one line must contain)
BAD_VALUES = [
    ("unknown key with a close match", {**BASE, "labelled_examples": 5}, ["unknown key `labelled_examples`", "did you mean `labeled_examples`"]),
    ("unknown key without a match", {**BASE, "colour": "red"}, ["unknown key `colour`"]),
    ("wrong type", {**BASE, "labeled_examples": "lots"}, ["labeled_examples", "'lots'"]),
    ("bad choice", {**BASE, "task": "translation"}, ["task", "'classification'", "'translation'"]),
    ("negative count", {**BASE, "labeled_examples": -5}, ["labeled_examples", "greater than or equal to 0"]),
    ("out of range", {**BASE, "model_params_b": 0}, ["model_params_b", "greater than 0"]),
    ("fractional count", {**BASE, "num_gpus": 1.5, "gpu_vram_gb": 24}, ["num_gpus", "whole number"]),
    ("bool expected", {**BASE, "privacy_on_prem": "perhaps"}, ["privacy_on_prem"]),
    ("gpus without memory", {**BASE, "num_gpus": 2, "gpu_vram_gb": 0}, ["num_gpus is 2", "gpu_vram_gb"]),
    ("memory without gpus", {**BASE, "num_gpus": 0, "gpu_vram_gb": 24}, ["gpu_vram_gb is 24", "num_gpus"]),
    ("missing required", {"task": "qa"}, ["missing goal, weight_access"]),
]


@pytest.mark.parametrize("case, answers, words", BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_values(case, answers, words):
    with pytest.raises(InputError) as info:
        build_profile(answers, "a.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("a.yaml: ")
    for word in words:
        assert word in message


BAD_FILES = [
    ("missing file", None, "no such file"),
    ("empty file", "", "empty"),
    ("whitespace only", "  \n\n", "empty"),
    ("invalid YAML", "task: [classification\n", "not valid YAML: line 2, column 1"),
    ("not a mapping", "- task\n- goal\n", "expected a mapping"),
    ("binary garbage", b"\xff\xfe\x00bad", "cannot read"),
]


@pytest.mark.parametrize("case, content, words", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files(tmp_path, case, content, words):
    path = tmp_path / "answers.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as info:
        read_answers(path)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        read_answers(tmp_path)


def test_json_answers(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(BASE))
    assert read_answers(path) == BASE
    path.write_text("{bad json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_answers(path)


def test_answers_under_a_top_level_key(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("answers:\n  task: qa\n")
    assert read_answers(path) == {"task": "qa"}


@pytest.mark.parametrize("name, size, base", [
    ("meta-llama/Llama-3.1-8B-Instruct", 8, False), ("Qwen/Qwen2.5-0.5B", 0.5, None), ("google/gemma-2-9b-it", 9, False),
    ("EleutherAI/pythia-410m", 0.41, None), ("my-local-model", None, None), ("mistralai/Mixtral-8x7B-v0.1", 45.2, None), ("Qwen/Qwen3-30B-A3B", 30, None), ("org/moe-A2.7B", None, None),
])
def test_model_name_inference(name, size, base):
    got_size, got_base = infer_from_model_name(name)
    assert got_size == (pytest.approx(size) if size else None)
    assert got_base == base


def test_detected_gpus_fill_missing_hardware():
    profile, notes = resolve(BASE, [GPU("NVIDIA A100-SXM4-80GB", 85.1)] * 2)
    assert (profile.num_gpus, profile.gpu_vram_gb) == (2, 85.1)
    assert any("detected" in n for n in notes)


def test_given_hardware_wins_over_detection():
    profile, _ = resolve({**BASE, "gpu_vram_gb": 24, "num_gpus": 1}, [GPU("A100", 80)] * 8)
    assert (profile.num_gpus, profile.gpu_vram_gb) == (1, 24)


def test_memory_alone_means_one_gpu():
    profile, _ = resolve({**BASE, "gpu_vram_gb": "24GB"}, [])
    assert (profile.num_gpus, profile.gpu_vram_gb) == (1, 24)


def test_closed_weights_skip_hardware():
    profile, notes = resolve({**BASE, "weight_access": "closed_api"}, [GPU("A100", 80)])
    assert profile.num_gpus == 0 and not notes


def test_model_name_fills_size_and_base():
    profile, notes = resolve({**BASE, "model": "Qwen/Qwen2.5-7B-Instruct", "gpu_vram_gb": 24, "num_gpus": 1})
    assert profile.model_params_b == pytest.approx(7.62, abs=0.01) and profile.is_base_model is False and len(notes) == 2
    assert "built-in config" in notes[0] and profile.context_window_tokens == 32768
    profile, notes = resolve({**BASE, "model": "org/custom-13B-chat", "gpu_vram_gb": 24, "num_gpus": 1})
    assert profile.model_params_b == 13 and "read from the model name" in notes[0] and profile.model_active_params_b is None


# Mixtures of experts: memory follows the total, compute the active; the name's last number is not the size.
@pytest.mark.parametrize("model, total, active", [
    ("mistralai/Mixtral-8x7B-v0.1", 46.7, 12.9),             # built-in config
    ("mistralai/Mixtral-8x22B-Instruct-v0.1", 140.6, 39.2),
    ("Qwen/Qwen3-30B-A3B", 30.5, 3.35),
    ("Qwen/Qwen1.5-MoE-A2.7B-Chat", 14.3, 2.69),
    ("deepseek-ai/DeepSeek-V3", 671.0, 37.5),
    ("someorg/Frankenmoe-4x7B", 23.4, 12.5),                 # read from the name: N experts of an M model
    ("someorg/Thing-2x13B-v2", 23.1, 23.1),
    ("someorg/Coder-80B-A6B-Instruct", 80, 6),               # -A<n>B: active parameters
])
def test_mixture_of_experts_sizes(model, total, active):
    profile, notes = resolve({**BASE, "model": model, "gpu_vram_gb": 80, "num_gpus": 1})
    assert profile.model_params_b == pytest.approx(total, rel=0.01)
    assert profile.model_active_params_b == pytest.approx(active, rel=0.01)
    assert "mixture of experts" in notes[0]


def test_a_given_size_is_not_paired_with_the_names_active_size():
    profile, _ = resolve({**BASE, "model": "someorg/Frankenmoe-4x7B", "model_params_b": 24, "gpu_vram_gb": 80, "num_gpus": 1})
    assert profile.model_params_b == 24 and profile.model_active_params_b is None
    with pytest.raises(InputError, match="part of the total"):
        build_profile({**BASE, "model_params_b": 7, "model_active_params_b": 13})
