"""The estimator on multimodal models: Qwen-VL's tower and resampler, diffusion UNets (Stable Diffusion 1.5, SDXL,
the demo's tiny pipeline) counted from their configs against the libraries' own models, their activations against
saved-tensor hooks, the published VLM and diffusion points, and the step-downs that apply to them."""

import json
from pathlib import Path

import pytest

from adaptkit._yaml import load_yaml
from adaptkit.estimator.architectures import DATA, load_model
from adaptkit.estimator.fit import suggest
from adaptkit.estimator.memory import Setup, estimate_memory, unet_activations
from adaptkit.methods.registry import recipe_changes, setup_for

ROOT = Path(__file__).parent.parent
SD_TINY = ROOT / "examples" / "images" / "sd-tiny"


def _entry(name: str) -> dict:
    return load_yaml(DATA / "models.yaml")[name]


@pytest.mark.parametrize("name", ["stable-diffusion-v1-5/stable-diffusion-v1-5", "stabilityai/stable-diffusion-xl-base-1.0"])
def test_a_unet_and_its_companions_are_counted_as_diffusers_builds_them(name):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    entry = _entry(name)
    config = {k: v for k, v in entry["config"].items() if k != "model_type"}
    with init_empty_weights():
        unet = UNet2DConditionModel(**config)
        parts = [AutoencoderKL(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                               up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2, latent_channels=4)]
        for part, values in entry["companions"].items():
            if part != "vae":
                kind = CLIPTextModelWithProjection if values.get("projection_dim") else CLIPTextModel
                parts.append(kind(CLIPTextConfig(**{k: v for k, v in values.items() if k != "architectures"})))
    arch = load_model(name, online=False)
    assert arch.total_params == sum(p.numel() for p in unet.parameters())
    assert arch.companion_params == sum(p.numel() for part in parts for p in part.parameters())
    assert arch.kind == "unet" and arch.sample_size * 8 == (1024 if "xl" in name else 512)


def test_a_pipeline_folder_is_read_from_its_parts():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    arch = load_model(str(SD_TINY), online=False)
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert arch.total_params == count(UNet2DConditionModel.from_pretrained(SD_TINY / "unet"))
    assert arch.companion_params == count(AutoencoderKL.from_pretrained(SD_TINY / "vae")) + count(
        CLIPTextModel.from_pretrained(SD_TINY / "text_encoder"))


def test_qwen_vl_is_its_language_model_plus_tower_and_resampler():
    vl, language = load_model("Qwen/Qwen-VL-Chat", online=False), load_model("Qwen/Qwen-7B", online=False)
    assert vl.total_params - vl.vision_params == language.total_params  # the same Qwen-7B under the tower
    assert 1.93e9 < vl.vision_params < 1.94e9 and 9.6e9 < vl.total_params < 9.7e9  # the paper's 1.9B tower, 9.6B in all
    assert vl.image_tokens == 258 and vl.module_names()[:2] == ["c_attn", "attn.c_proj"]


def test_unet_activations_follow_what_autograd_saves():
    """A mid-sized SD-style UNet at 256 px: the bytes autograd keeps for the backward pass (saved-tensor hooks, weights
    left out, shared storage once; benchmarks/unet_activations.py does the same on SD 1.5 and SDXL) against the
    estimate."""
    config = dict(block_out_channels=[64, 128, 256], down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                  up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"], layers_per_block=2,
                  attention_head_dim=8, cross_attention_dim=64, sample_size=32, norm_num_groups=32)
    measured = _benchmark("unet_activations").saved_bytes(config, 256)
    estimate = unet_activations(load_model_from(config), Setup(resolution=256, seq_len=1), 4)
    assert 0.8 < estimate / measured < 1.25


def load_model_from(config: dict):
    from adaptkit.estimator.architectures import from_config

    return from_config({"model_type": "unet", **config}, "mid-unet")


def _benchmark(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _calibration() -> dict:
    return {row["id"]: row for row in _benchmark("memory_calibration").run()["points"]}


def test_the_published_vision_language_and_diffusion_points_are_within_15_percent():
    points = _calibration()
    media = [name for name in points if name.startswith(("qwen-vl-lora-", "qwen2-vl-", "sdxl-lora"))]
    assert {"qwen-vl-lora-384", "qwen-vl-lora-2048", "qwen2-vl-lora-coco", "sdxl-lora-8gb"} <= set(media)
    for name in media:
        if name != "qwen-vl-lora-base-384":  # full copies of the embeddings and head beside the adapters: +17%
            assert abs(points[name]["adaptkit_error"]) < 0.15, (name, points[name])


def test_diffusion_and_image_step_downs():
    sdxl = load_model("sdxl", online=False)
    setup = setup_for("lora_adapters", batch_size=1, lora_r=8)
    resolved = setup.resolved(sdxl)
    assert resolved.resolution == 1024 and resolved.seq_len == 128 * 128
    assert estimate_memory(sdxl, setup_for("lora_adapters", resolution=512)).peak_gb < estimate_memory(sdxl, setup).peak_gb
    changes, verdict = suggest(sdxl, setup, 8.0)
    assert verdict is None and changes
    said = " | ".join(change.description for change in changes)
    assert "computed beforehand" in said and "tokens" not in said and "cross-entropy" not in said
    assert any(change.setup.cached_inputs for change in changes)
    with pytest.raises(Exception, match="multiple of 8"):
        estimate_memory(sdxl, setup_for("lora_adapters", resolution=1001))

    vl = load_model("Qwen/Qwen-VL-Chat", online=False)
    setup = setup_for("lora_adapters", seq_len=256, image_tokens=1000, gradient_checkpointing=True)
    changes, _ = suggest(vl, setup, 24.0)
    fewer = [c for c in changes if "image tokens an example" in c.description]
    assert fewer and fewer[0].setup.image_tokens < 1000
    overrides, _ = recipe_changes(setup, fewer[0].setup)
    assert not any(o.startswith("training.max_length") for o in overrides)  # the text is as long as before


def test_estimate_cli_on_a_diffusion_model(invoke):
    result = json.loads(invoke("estimate", "--model", str(SD_TINY), "--method", "lora_adapters", "--resolution", "256",
                               "--tokens", "1M", "--json").stdout)
    assert result["setup"]["resolution"] == 256 and result["train_flops"] is None
    assert any("not modeled for a diffusion UNet" in note for note in result["assumptions"])
    cached = json.loads(invoke("estimate", "--model", "sdxl", "--method", "lora_adapters", "--cached-inputs", "--json").stdout)
    whole = json.loads(invoke("estimate", "--model", "sdxl", "--method", "lora_adapters", "--json").stdout)
    assert whole["breakdown"]["weights"] - cached["breakdown"]["weights"] == pytest.approx(2 * 901_374_183 / 1e9, abs=0.01)
    text = invoke("estimate", "--model", "sdxl", "--method", "lora_adapters", "--gpu-memory-gb", "8").stdout
    assert "1024 px images" in text and "computed beforehand" in text


def test_qwen2_vl_counts_as_transformers_and_its_image_tokens_follow_the_size(invoke):
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    from adaptkit.estimator.architectures import from_config, image_tokens_for

    entry = _entry("Qwen/Qwen2-VL-7B-Instruct")["config"]
    config = Qwen2VLConfig(text_config=entry["text_config"], vision_config=entry["vision_config"])
    with torch.device("meta"):
        built = Qwen2VLForConditionalGeneration(config)
    arch = from_config(config.to_dict(), "qwen2-vl")
    assert arch.total_params == sum(p.numel() for p in built.parameters()) == load_model("qwen2-vl-7b", online=False).total_params
    for width, height in ((1024, 1024), (1920, 1080), (100, 60), (8000, 8000), (333, 777)):
        h, w = smart_resize(height, width)
        assert image_tokens_for(arch, width, height) == h * w // (28 * 28)
    llava = load_model("llava-1.5-7b", online=False)
    assert image_tokens_for(llava, 20, 20) == image_tokens_for(llava, 4000, 3000) == 576  # its processor resizes every image
    big = json.loads(invoke("estimate", "--model", "qwen2-vl-7b", "--method", "lora_adapters", "--seq-len", "256", "--image-size",
                            "1920x1080", "--json").stdout)
    assert big["setup"]["image_tokens"] == image_tokens_for(arch, 1920, 1080) and big["setup"]["seq_len"] == 256 + big["setup"]["image_tokens"]
    assert invoke("estimate", "--model", "qwen2-vl-7b", "--image-size", "1024").exit_code == 2
    assert "aspect ratio over 200" in invoke("estimate", "--model", "qwen2-vl-7b", "--image-size", "20000x50").output
    both = invoke("estimate", "--model", "qwen2-vl-7b", "--image-size", "64x64", "--image-tokens", "3")
    assert both.exit_code == 2 and "pass one" in both.output
    changes, _ = suggest(arch, setup_for("lora_adapters", seq_len=2048, image_tokens=1225), 20.0)
    for change in changes:  # truncation shortens the text, never the images
        assert change.setup.seq_len - change.setup.image_tokens >= 64


def test_a_recipes_step_downs_name_its_own_fields(invoke):
    """The recipe's overrides for each step-down: a text-to-image recipe's resolution is data.image_size; an image
    classifier's patches are no max_length to change."""
    result = json.loads(invoke("estimate", "--recipe", str(ROOT / "recipes" / "sd_lora.yaml"), "data.image_size=1024",
                               "training.batch_size=64", "--gpu-memory-gb", "1", "--json").stdout)
    assert result["setup"]["resolution"] == 1024
    lower = [s for s in result["suggestions"] if "px" in s["change"]]
    assert lower and lower[0]["overrides"] == [f"data.image_size={lower[0]['setup']['resolution']}"]
    assert not any(o.startswith("training.max_length") for s in result["suggestions"] for o in s["overrides"])
    vit = json.loads(invoke("estimate", "--recipe", str(ROOT / "recipes" / "image_cls.yaml"), "training.batch_size=2048",
                            "--gpu-memory-gb", "1", "--json").stdout)
    assert vit["suggestions"] and not any(o.startswith("training.max_length") for s in vit["suggestions"] for o in s["overrides"])


def test_freezing_the_vision_tower_is_a_step_down_of_a_vlm_full_fine_tune():
    from dataclasses import replace

    vl = load_model("Qwen/Qwen-VL-Chat", online=False)
    setup = setup_for("full_finetuning", seq_len=512, gradient_checkpointing=True).resolved(vl)
    frozen = replace(setup, freeze_vision=True)
    whole, less = estimate_memory(vl, setup), estimate_memory(vl, frozen)
    assert whole.trainable_params - less.trainable_params == vl.vision_params
    assert whole.peak_gb - less.peak_gb > vl.vision_params * 16 / 1e9  # masters, gradients and Adam states of the tower
    changes, _ = suggest(vl, setup, less.peak_gb + 1)
    froze = [c for c in changes if c.setup.freeze_vision and c.setup.adapter == "none"]
    assert froze and "vision tower frozen" in froze[0].description
    overrides, _ = recipe_changes(setup, froze[0].setup)
    assert "freeze_vision_tower=true" in overrides


def test_bad_diffusion_configs_are_one_line(invoke, tmp_path):
    pipe = tmp_path / "pipe"
    (pipe / "unet").mkdir(parents=True)
    (pipe / "model_index.json").write_text("{}")
    for config, said in (({"block_out_channels": "abc"}, "must be a list"), ([1], "expected a JSON object"),
                         ({"block_out_channels": [320000000, 640], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                           "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}, "not a model adaptkit can size"),
                         ({"block_out_channels": [32, 64], "transformer_layers_per_block": [1, 2, 3]}, "3 entries for 2 blocks")):
        (pipe / "unet" / "config.json").write_text(json.dumps(config))
        result = invoke("estimate", "--model", str(pipe), "--method", "lora_adapters")
        assert result.exit_code == 2 and said in result.output and len(result.output.strip().splitlines()) == 1, result.output
    (pipe / "unet" / "config.json").unlink()
    assert "without unet/config.json" in invoke("estimate", "--model", str(pipe), "--method", "lora_adapters").output


def test_the_python_api_takes_the_same_media_settings():
    import adaptkit

    vl = adaptkit.estimate(model="qwen2-vl-7b", method="lora_adapters", seq_len=256, image_size=(1920, 1080), calibrate=False)
    from adaptkit.estimator.architectures import image_tokens_for

    assert vl["setup"]["image_tokens"] == image_tokens_for(load_model("qwen2-vl-7b", online=False), 1920, 1080)
    sd = adaptkit.estimate(model="sdxl", method="lora_adapters", resolution=512, cached_inputs=True, calibrate=False)
    assert sd["setup"]["resolution"] == 512 and sd["setup"]["cached_inputs"]
    from adaptkit.errors import InputError

    with pytest.raises(InputError, match="takes no images"):
        adaptkit.estimate(model="llama-2-7b", method="lora_adapters", image_size=(64, 64))
    with pytest.raises(InputError, match="pass one"):
        adaptkit.estimate(model="qwen2-vl-7b", method="lora_adapters", image_size=(64, 64), image_tokens=3)
