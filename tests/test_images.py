"""Image classification: the demo's generated shapes, checked before any weights load, trained (all weights or LoRA),
predicted on, merged, exported as a script that agrees with adaptkit run, and sized by the estimator."""

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers_media import advised_recipe, refused, regenerates, rows, rows_from, write
from tests.test_export import run_without_adaptkit

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "examples" / "images"
QUICK = ["training.max_steps=12", "training.eval_every=12", "training.save_every=12"]


@pytest.mark.unit
def test_the_demo_images_are_what_their_script_writes(tmp_path):
    regenerates(IMAGES, "make_shapes.py", tmp_path, "train/circle_0000.png")
    labels = {row["label"] for row in rows(IMAGES / "train.jsonl")}
    assert labels == {"circle", "square", "triangle", "cross"} and len(rows(IMAGES / "train.jsonl")) == 600


@pytest.mark.unit
def test_a_vit_is_sized_from_its_config():
    from transformers import DeiTConfig, DeiTModel, ViTConfig, ViTModel

    from adaptkit.estimator.architectures import from_config

    for config, model_class, tokens in ((ViTConfig(), ViTModel, 197),
                                        (DeiTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                                    image_size=32, patch_size=4), DeiTModel, 66)):
        arch = from_config(config.to_dict())
        built = model_class(config, add_pooling_layer=False)
        assert arch.total_params == sum(p.numel() for p in built.parameters())
        assert arch.input_tokens == tokens and arch.context_window is None


@pytest.mark.unit
def test_the_dry_run_shows_the_images_and_sizes_them_by_patches(invoke):
    result = invoke("run", "image_cls", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    data = plan["data"]
    assert data["labels"] == {"circle": 150, "cross": 150, "square": 150, "triangle": 150}
    assert data["images"] == {"count": 700, "width": [32, 32], "height": [32, 32]}
    assert data["leakage"].startswith("0 of 100 eval rows also in train") and "sha256" in data["leakage"]
    assert plan["memory"]["setup"]["seq_len"] == 65  # 8 x 8 patches and the class token, not max_length
    assert "images: 700, 32-32 x 32-32 pixels" in invoke("run", "image_cls", "--dry-run").output


@pytest.mark.unit
def test_bad_images_are_one_line_each_before_any_weights_load(invoke, tmp_path):
    good = rows_from(IMAGES / "train.jsonl", "image", 8)
    (tmp_path / "notes.png").write_text("not a picture")
    from PIL import Image

    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    cases = [
        ([{**good[0], "image": "gone/missing.png"}], "row 9: no such image file", "relative to the data file"),
        ([{**good[0], "image": "notes.png"}], "row 9: cannot read the image", "notes.png"),
        ([{**good[0], "image": "big.png"}], "300 x 300 pixels, over data.max_image_pixels=50,000", "shrink it first"),
        ([{"picture": good[0]["image"], "label": "circle"}], "column `image` not found", "picture"),
    ]
    for bad, said, also in cases:
        train = write(tmp_path / "train.jsonl", (bad + good) if "picture" in bad[0] else (good + bad))
        message = refused(invoke, "image_cls", f"data.train={train}", "data.max_image_pixels=50000", out=tmp_path / "out")
        assert said in message and also in message


@pytest.mark.unit
def test_a_copied_image_in_eval_is_leakage(invoke, tmp_path):
    train = rows_from(IMAGES / "train.jsonl", "image", 40)
    shutil.copy(train[0]["image"], tmp_path / "copy.png")  # the same bytes under another name
    held_out = write(tmp_path / "eval.jsonl", [{"image": "copy.png", "label": train[0]["label"]}] +
                     [{"image": str(IMAGES / r["image"]), "label": r["label"]} for r in rows(IMAGES / "eval.jsonl")[:9]])
    result = invoke("run", "image_cls", f"data.train={write(tmp_path / 'train.jsonl', train)}", f"data.eval={held_out}",
                    "--dry-run", "--json")
    assert json.loads(result.stdout)["data"]["leakage"].startswith("1 of 10 eval rows also in train (1 exact, 0 near")


@pytest.mark.unit
def test_advise_on_labeled_images_writes_an_image_classifier(invoke, tmp_path):
    recipe = advised_recipe(invoke, IMAGES / "train.jsonl", tmp_path / "images.yaml", "--set", f"model={IMAGES / 'vit-tiny'}")
    assert "600 labeled images in 4 classes (image `image`, label `label`)" in recipe["said"]
    assert recipe["task"] == "image_classification" and recipe["method"] == "lora_adapters"
    assert recipe["data"]["image_column"] == "image" and "text_column" not in recipe["data"]


def test_the_demo_trains_predicts_and_exports_a_script_that_agrees(invoke, tmp_path):
    from tests.conftest import check_resources

    out = tmp_path / "run_out"
    result = invoke("run", "image_cls", *QUICK, f"output_dir={out}", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["task"] == "image_classification" and metrics["eval"]["primary_metric"] == "accuracy"
    assert metrics["eval"]["base"]["kind"].startswith("majority class") and "delta" in metrics["eval"]
    check_resources(metrics)
    assert json.loads((out / "labels.json").read_text()) == ["circle", "cross", "square", "triangle"]
    assert (out / "preprocessor_config.json").is_file() and "AutoModelForImageClassification" in (out / "README.md").read_text()

    predicted = invoke("predict", out, IMAGES / "eval.jsonl", "-o", tmp_path / "p.jsonl", "--json")
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout)["scores"]["accuracy"] == pytest.approx(metrics["eval"]["accuracy"])
    one = invoke("predict", out, IMAGES / "eval" / "circle_0000.png")
    assert one.exit_code == 0 and set(json.loads(one.stdout)["probabilities"]) == {"circle", "cross", "square", "triangle"}
    served = invoke("serve", out, "--port", "0")
    assert served.exit_code == 2 and "is an image classifier" in served.stderr

    script = tmp_path / "train.py"
    assert invoke("export", "image_cls", *QUICK, f"output_dir={tmp_path / 'script_out'}", "-o", script).exit_code == 0
    from_script = run_without_adaptkit(script, tmp_path)
    assert from_script["eval"]["accuracy"] == pytest.approx(metrics["eval"]["accuracy"])
    assert from_script["eval"]["loss"] == pytest.approx(metrics["eval"]["loss"], rel=1e-6)
    assert from_script["train"]["final_loss"] == pytest.approx(metrics["train"]["final_loss"], rel=1e-6)


def test_lora_trains_the_new_head_beside_the_adapters_and_merges(invoke, tmp_path):
    recipe = tmp_path / "lora_images.yaml"
    advised_recipe(invoke, IMAGES / "train.jsonl", recipe, "--set", f"model={IMAGES / 'vit-tiny'}")
    out = tmp_path / "lora"
    result = invoke("run", recipe, *QUICK, "data.max_rows=96", f"output_dir={out}", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert 0 < metrics["train"]["trainable_params"] < metrics["train"]["total_params"]
    assert json.loads((out / "adapter_config.json").read_text())["modules_to_save"] == ["classifier"]
    merged = tmp_path / "merged"
    assert invoke("merge", out, "-o", merged).exit_code == 0
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(merged)
    assert model.config.id2label == {0: "circle", 1: "cross", 2: "square", 3: "triangle"}
    before = invoke("predict", out, IMAGES / "eval.jsonl", "-o", tmp_path / "a.jsonl", "--json")
    assert before.exit_code == 0, before.output
    answers = [row["prediction"] for row in rows(tmp_path / "a.jsonl")]
    assert len(answers) == 100 and set(answers) <= {"circle", "cross", "square", "triangle"}


@pytest.mark.unit
def test_pictures_as_a_hub_dataset_gives_them_are_read(tmp_path):
    """A hub image dataset hands rows of Pillow images (decoded) or {bytes, path} (parquet): both are checked and kept."""
    from PIL import Image

    from adaptkit.methods.supervised.images import check_images, open_image

    picture = Image.open(IMAGES / "train" / "circle_0000.png")
    stored = {"bytes": sorted((IMAGES / "train").glob("cross_*.png"))[0].read_bytes(), "path": None}
    rows = [{"image": picture.copy(), "label": "circle"}, {"image": stored, "label": "cross"}]
    assert check_images(rows, "image", tmp_path, "data.train", 25_000_000) == [(32, 32), (32, 32)]
    assert all(row["image"].startswith("data:image/png;base64,") for row in rows)
    assert open_image(rows[0]["image"]).tobytes() == picture.convert("RGB").tobytes()


def _class_folders(target: Path, split: str, per_class: int) -> Path:
    """The demo's pictures as a user keeps them: one subfolder per class (datasets' imagefolder layout)."""
    for row in rows(IMAGES / f"{split}.jsonl"):
        folder = target / row["label"]
        folder.mkdir(parents=True, exist_ok=True)
        if len(list(folder.iterdir())) < per_class:
            shutil.copy(IMAGES / row["image"], folder)
    return target


def test_class_subfolders_are_a_dataset_for_advise_run_and_predict(invoke, tmp_path):
    """photos/circle/*.png, photos/cross/*.png ...: read as datasets' imagefolder reads them (the label is the folder's
    name) by advise --data, by a run's data.train and data.eval, and by predict; split folders above them are named."""
    train = _class_folders(tmp_path / "photos" / "train", "train", 24)
    test = _class_folders(tmp_path / "photos" / "test", "eval", 6)
    advice = json.loads(invoke("advise", "--data", train, "--set", "goal=behavior", "--set", "weight_access=open", "--no-input",
                               "--json").stdout)
    assert advice["profile"]["task"] == "classification" and advice["profile"]["labeled_examples"] == 96
    split = invoke("advise", "--data", train, "--set", "goal=behavior", "--set", "weight_access=open", "--no-input",
                   "--bake-off", tmp_path / "bo")
    assert split.exit_code == 0, split.output
    assert all(Path(row["image"]).is_file() for row in rows(tmp_path / "bo" / "train.jsonl"))  # named from the folder they are in
    out = tmp_path / "run"
    result = invoke("run", "image_cls", f"data.train={train}", f"data.eval={test}", f"output_dir={out}", *QUICK, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["eval_data"]["rows"] == 24 and set(json.loads((out / "labels.json").read_text())) == {"circle", "cross", "square",
                                                                                                       "triangle"}
    predicted = invoke("predict", out, test, "--json", "-o", tmp_path / "p.jsonl")
    assert json.loads(predicted.stdout)["scores"]["accuracy"] == pytest.approx(metrics["eval"]["accuracy"], abs=1e-9)
    refused_split = invoke("run", "image_cls", f"data.train={tmp_path / 'photos'}", "data.eval=", f"output_dir={tmp_path / 'no'}")
    assert refused_split.exit_code == 2 and "holds split folders (test, train)" in refused_split.stderr
    one = invoke("run", "image_cls", f"data.train={train / 'circle'}", "data.eval=", f"output_dir={tmp_path / 'no'}")
    assert one.exit_code == 2 and "without class subfolders" in one.stderr  # a class's own folder: files, no subfolders
    (tmp_path / "lone" / "circle").mkdir(parents=True)
    shutil.copy(next((train / "circle").iterdir()), tmp_path / "lone" / "circle")
    lone = invoke("run", "image_cls", f"data.train={tmp_path / 'lone'}", "data.eval=", f"output_dir={tmp_path / 'no'}")
    assert lone.exit_code == 2 and "has one subfolder of images or audio (circle/)" in lone.stderr
    assert not (tmp_path / "no").exists()


@pytest.mark.unit
def test_a_data_folder_has_an_identity_that_follows_its_files(tmp_path):
    """A folder of class subfolders is the data a run trained on: its sha256 (the ledger's and compare's identity of
    the data) changes with a file's bytes or name, not with hidden files."""
    from adaptkit._files import sha256_of

    folder = _class_folders(tmp_path / "photos", "eval", 2)
    first = sha256_of(folder)
    (folder / ".DS_Store").write_text("finder")
    assert sha256_of(folder) == first
    picture = next((folder / "circle").iterdir())
    picture.rename(picture.with_name("renamed.png"))
    assert sha256_of(folder) not in (first, None)
