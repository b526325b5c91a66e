"""Text-to-image LoRA: the demo's captioned shapes, checked before any weights load, a Stable Diffusion UNet's LoRA
trained as diffusers trains it (through the Trainer), the held-out denoising loss against the model before training, the
LoRA in the format diffusers' load_lora_weights reads, a sample grid before and after, and an exported script that
agrees with adaptkit run."""

import json
from pathlib import Path

import pytest

from tests.helpers_media import advised_recipe
from tests.test_export import run_without_adaptkit

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "examples" / "images"
QUICK = ["training.max_steps=4", "training.eval_every=4", "training.save_every=4", "data.max_rows=32", "training.batch_size=8"]


def held_out(tmp_path: Path, count: int = 16) -> Path:
    rows = [json.loads(line) for line in (IMAGES / "captions_eval.jsonl").read_text().splitlines()][:count]
    path = tmp_path / "held_out.jsonl"
    path.write_text("".join(json.dumps({**r, "image": str(IMAGES / r["image"])}) + "\n" for r in rows))
    return path


@pytest.mark.unit
def test_the_dry_run_shows_captioned_images(invoke):
    result = invoke("run", "sd_lora", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data["sample"]["caption"].startswith("a ") and data["images"]["count"] == 700


@pytest.mark.unit
def test_what_a_diffusion_lora_cannot_take_is_refused(invoke):
    for override, said in (("lora.use_dora=true", "not offered for it"), ("method=full_finetuning", "needs `task:")):
        result = invoke("run", "sd_lora", override, "--dry-run")
        assert result.exit_code == 2 and said in result.stderr, result.output


@pytest.mark.unit
def test_advise_on_captioned_images_writes_a_diffusion_lora(invoke, tmp_path):
    recipe = advised_recipe(invoke, IMAGES / "captions_train.jsonl", tmp_path / "sd.yaml")
    assert recipe["task"] == "text_to_image" and recipe["lora"]["target_modules"] == ["to_k", "to_q", "to_v", "to_out.0"]
    assert recipe["data"]["text_column"] == "caption"


def test_the_lora_trains_loads_in_diffusers_and_the_script_agrees(invoke, tmp_path):
    evaluation = held_out(tmp_path)
    out = tmp_path / "run_out"
    result = invoke("run", "sd_lora", *QUICK, f"data.eval={evaluation}", f"output_dir={out}", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    e = metrics["eval"]
    assert e["primary_metric"] == "denoising_loss" and e["base"]["kind"].startswith("the model before training")
    assert e["delta"]["denoising_loss"] == pytest.approx(e["denoising_loss"] - e["base"]["denoising_loss"], abs=1e-6)
    assert (out / "samples.png").is_file() and json.loads((out / "samples.json").read_text())["prompts"][0].startswith("a ")
    assert not (out / "model.safetensors").exists() and "load_lora_weights" in (out / "README.md").read_text()

    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(IMAGES / "sd-tiny", safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    draw = lambda: pipe("a red circle", num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np").images  # noqa: E731
    base = draw()
    pipe.load_lora_weights(out)  # diffusers reads the run's LoRA as it is
    assert abs(draw() - base).max() > 0

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"caption": "a red circle"}\n{"caption": "a blue cross", "seed": 7, "steps": 3}\n')
    assert "give -o FILE" in invoke("predict", out, prompts).stderr
    drawn = invoke("predict", out, prompts, "-o", tmp_path / "drawn.jsonl")
    assert drawn.exit_code == 0, drawn.output
    rows = [json.loads(line) for line in (tmp_path / "drawn.jsonl").read_text().splitlines()]
    assert [(r["seed"], r["steps"]) for r in rows] == [(0, 20), (7, 3)] and all(Path(r["image"]).is_file() for r in rows)
    again = invoke("predict", out, prompts, "-o", tmp_path / "drawn.jsonl", "--force")
    assert again.exit_code == 2 and "never written over" in again.stderr  # --force replaces the file, never the pictures
    assert "a text-to-image LoRA" in invoke("serve", out).stderr

    script = tmp_path / "train.py"
    assert invoke("export", "sd_lora", *QUICK, f"data.eval={evaluation}", f"output_dir={tmp_path / 'script_out'}", "-o", script).exit_code == 0
    from_script = run_without_adaptkit(script, tmp_path)
    assert from_script["eval"]["denoising_loss"] == pytest.approx(e["denoising_loss"], rel=1e-5)
    assert from_script["eval"]["base"]["denoising_loss"] == pytest.approx(e["base"]["denoising_loss"], rel=1e-5)
    assert from_script["train"]["final_loss"] == pytest.approx(metrics["train"]["final_loss"], rel=1e-5)
