"""Vision-language fine-tuning: the demo's questions about generated shapes, checked before any weights load, trained
with LoRA on the language model through TRL, scored against the model before training, answered by predict and over
the OpenAI chat protocol with image parts, merged, and exported as a script that agrees with adaptkit run."""

import base64
import json
from pathlib import Path

import pytest

from tests.helpers_media import advised_recipe, refused, rows
from tests.test_export import run_without_adaptkit
from tests.test_serve import running

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "examples" / "images"
QUICK = ["training.max_steps=6", "training.eval_every=6", "training.save_every=6", "data.max_rows=48", "training.generate_eval=4"]


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.mark.unit
def test_the_dry_run_shows_questions_about_images(invoke):
    result = invoke("run", "vlm_lora_sft", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data["images"]["count"] == 700 and set(data["sample"]) == {"image", "prompt", "response"}
    assert data["leakage"].startswith("0 of 100 eval rows")


@pytest.mark.unit
def test_chat_messages_with_image_parts_are_read_and_checked(invoke, tmp_path):
    picture = IMAGES / "train" / "circle_0000.png"
    good = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": str(picture)}},
                                                      {"type": "text", "text": "What shape is drawn?"}]},
                         {"role": "assistant", "content": "circle"}]}
    inline = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(picture)}},
                                                        {"type": "text", "text": "What colour is the shape?"}]},
                           {"role": "assistant", "content": "red"}]}
    train = tmp_path / "chat.jsonl"
    train.write_text(json.dumps(good) + "\n" + json.dumps(inline) + "\n")
    ok = invoke("run", "vlm_lora_sft", f"data.train={train}", "data.eval=", "data.messages_column=messages", "--dry-run", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["data"]["images"]["count"] == 2
    no_image = {"messages": [{"role": "user", "content": "What shape?"}, {"role": "assistant", "content": "circle"}]}
    missing = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "gone.png"}}]},
                            {"role": "assistant", "content": "circle"}]}
    for bad, said in ((no_image, "row 2: no image part in the messages"), (missing, "no such image file")):
        train.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        message = refused(invoke, "vlm_lora_sft", f"data.train={train}", "data.eval=", "data.messages_column=messages",
                          out=tmp_path / "out")
        assert said in message


@pytest.mark.unit
def test_advise_on_images_with_questions_writes_a_vision_language_recipe(invoke, tmp_path):
    recipe = advised_recipe(invoke, IMAGES / "vqa_train.jsonl", tmp_path / "vlm.yaml")
    assert recipe["task"] == "image_text_to_text" and recipe["lora"]["target_modules"] == "all-linear"
    assert recipe["data"]["image_column"] == "image" and recipe["data"]["prompt_column"] == "question"


def test_lora_on_the_language_model_trains_answers_serves_and_exports(invoke, tmp_path):
    out = tmp_path / "run_out"
    result = invoke("run", "vlm_lora_sft", *QUICK, f"output_dir={out}", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    e = metrics["eval"]
    assert metrics["task"] == "image_text_to_text" and e["primary_metric"] == "rougeL" and e["rows"] == 4
    assert e["base"]["kind"].startswith("the model before training") and "exact_match" in e["delta"]
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert "vision_tower" in adapter["exclude_modules"] and adapter["modules_to_save"] == ["multi_modal_projector", "lm_head"]
    import safetensors.torch

    saved = safetensors.torch.load_file(out / "adapter_model.safetensors")
    assert any("language_model" in name and "lora_A" in name for name in saved)
    assert not any("vision_tower" in name and "lora_" in name for name in saved)  # the vision tower stays as it was

    asked = rows(IMAGES / "vqa_eval.jsonl")[:2]
    (tmp_path / "asked.jsonl").write_text("".join(json.dumps({**r, "image": str(IMAGES / r["image"])}) + "\n" for r in asked))
    predicted = invoke("predict", out, tmp_path / "asked.jsonl", "--max-new-tokens", "8", "-o", tmp_path / "p.jsonl", "--json")
    assert predicted.exit_code == 0, predicted.output
    answers = [row["prediction"] for row in rows(tmp_path / "p.jsonl")]
    assert json.loads(predicted.stdout)["scores"]["rows"] == 2

    from openai import OpenAI

    from adaptkit.runners.serve import Served, create_app

    served = Served([str(out)])
    with running(create_app(served, max_request_kb=512)) as port:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        for row, answer in zip(asked, answers):
            content = [{"type": "image_url", "image_url": {"url": data_url(IMAGES / row["image"])}}, {"type": "text", "text": row["question"]}]
            chat = client.chat.completions.create(model="run_out", messages=[{"role": "user", "content": content}], max_tokens=8,
                                                  temperature=0)
            assert chat.choices[0].message.content == answer  # the server answers as predict does
        import httpx

        fetch = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "run_out", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/hostname"}}]}]})
        assert fetch.status_code == 400 and "data URL" in fetch.json()["error"]["message"]
        import io

        from PIL import Image

        bomb = io.BytesIO()
        Image.new("L", (6000, 6000)).save(bomb, format="PNG")  # 36 M pixels in a few dozen KB: refused before decoding
        huge = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "run_out", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(bomb.getvalue()).decode()}}]}]})
        assert huge.status_code == 400 and "6000 x 6000 pixels" in huge.json()["error"]["message"]

    script = tmp_path / "train.py"
    assert invoke("export", "vlm_lora_sft", *QUICK, f"output_dir={tmp_path / 'script_out'}", "-o", script).exit_code == 0
    from_script = run_without_adaptkit(script, tmp_path)
    assert from_script["eval"]["loss"] == pytest.approx(e["loss"], rel=1e-5)
    assert from_script["train"]["final_loss"] == pytest.approx(metrics["train"]["final_loss"], rel=1e-5)
    assert from_script["train"]["trainable_params"] == metrics["train"]["trainable_params"]

    merged = tmp_path / "merged"
    assert invoke("merge", out, "-o", merged).exit_code == 0
    assert "AutoModelForImageTextToText" in (merged / "README.md").read_text()
    from transformers import AutoModelForImageTextToText, AutoProcessor

    assert AutoModelForImageTextToText.from_pretrained(merged) is not None and AutoProcessor.from_pretrained(merged) is not None


@pytest.mark.unit
def test_a_llava_is_sized_from_its_config_and_its_images_join_the_sequence(invoke, tmp_path):
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    from adaptkit.estimator.architectures import from_config

    seven_b = LlavaConfig(vision_config=CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                                                         image_size=336, patch_size=14, projection_dim=768),
                          text_config=LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                                  num_attention_heads=32, num_key_value_heads=32), vision_feature_layer=-2)  # LLaVA-1.5 7B's shape
    demo = LlavaConfig(**json.loads((IMAGES / "llava-tiny" / "config.json").read_text()))
    for config, tokens in ((seven_b, 576), (demo, 16)):
        with torch.device("meta"):
            built = LlavaForConditionalGeneration(config)
        arch = from_config(config.to_dict())
        assert arch.total_params == sum(p.numel() for p in built.parameters()) and arch.image_tokens == tokens
    seven_b.save_pretrained(tmp_path / "llava")
    runs = {n: json.loads(invoke("estimate", "--model", tmp_path / "llava", "--method", "lora_adapters", "--seq-len", "512",
                                 "--image-tokens", str(n), "--json").stdout) for n in (0, 1000)}
    assert runs[1000]["setup"]["seq_len"] == 1512 and runs[0]["setup"]["seq_len"] == 512
    assert runs[1000]["peak_memory_gb"] > runs[0]["peak_memory_gb"]
    assert any("1,000 are image tokens" in note and "frozen" in note for note in runs[1000]["assumptions"])


def test_full_fine_tuning_can_keep_the_vision_tower_frozen(invoke, tmp_path):
    """`freeze_vision_tower: true` on a full fine-tune: the tower's weights come back as they were, the language model's
    change, the estimate counts no gradients or states for the tower, and the script export freezes it the same way."""
    import safetensors.torch

    out = tmp_path / "frozen"
    overrides = ["method=full_finetuning", "lora=", "freeze_vision_tower=true", *QUICK, f"output_dir={out}"]
    result = invoke("run", "vlm_lora_sft", *overrides, "--json")
    assert result.exit_code == 0, result.output
    trained = safetensors.torch.load_file(out / "model.safetensors")
    base = safetensors.torch.load_file(IMAGES / "llava-tiny" / "model.safetensors")
    key = lambda name: name.split("model.", 1)[-1]  # noqa: E731  the saved names may carry another prefix
    before = {key(n): t for n, t in base.items()}
    tower = [n for n in trained if "vision_tower" in n]
    language = [n for n in trained if "language_model" in n and "layers" in n]
    assert tower and language
    assert all(trained[n].float().equal(before[key(n)].float()) for n in tower)
    assert any(not trained[n].float().equal(before[key(n)].float()) for n in language)
    estimate = json.loads(invoke("estimate", "--recipe", "vlm_lora_sft", *overrides[:3], "--json").stdout)
    thawed = json.loads(invoke("estimate", "--recipe", "vlm_lora_sft", *overrides[:2], "--json").stdout)
    assert thawed["trainable_params"] - estimate["trainable_params"] > 0
    assert any("vision tower" in note and "frozen" in note for note in estimate["assumptions"])
    script = tmp_path / "train.py"
    assert invoke("export", "vlm_lora_sft", *overrides[:3], "--format", "script", "-o", script).exit_code == 0
    compile(script.read_text(), str(script), "exec")
    assert "parameter.requires_grad_(False)" in script.read_text() and "if True:" in script.read_text()
    wrong = invoke("run", "lora_cls", "method=full_finetuning", "lora=", "freeze_vision_tower=true", "--dry-run")
    assert wrong.exit_code == 2 and "image_text_to_text" in wrong.output


@pytest.mark.unit
def test_a_bake_off_of_image_rows_keeps_their_images(invoke, tmp_path):
    """advise --bake-off splits the user's rows into its own folder: their relative image paths are written absolute, so
    every candidate's data check finds the pictures."""
    folder = tmp_path / "cands"
    result = invoke("advise", "--data", IMAGES / "vqa_train.jsonl", "--set", "weight_access=open", "--set", "goal=behavior",
                    "--no-input", "--bake-off", folder)
    assert result.exit_code == 0, result.output
    held = rows(folder / "heldout.jsonl")
    assert held and all(Path(row["image"]).is_absolute() and Path(row["image"]).is_file() for row in held)
    for recipe in folder.glob("*.yaml"):
        dry = invoke("run", recipe, "--dry-run")
        assert dry.exit_code == 0, dry.output
