"""Write the image classifier's demo data: small generated pictures of four shapes (circle, square, triangle, cross)
in random colours, sizes and places over a cluttered background, so the label is the shape and never the colour. Each
row of train.jsonl / eval.jsonl names its image (relative to the file, as datasets' imagefolder metadata does) and
its label.

Also writes `vit-tiny/`: a small ViT initialised from a config with a fixed seed (no pretrained vision model can be
downloaded offline), so `adaptkit run image_cls` trains for real on a fresh checkout. For real work set
model=google/vit-base-patch16-224-in21k (or any image classifier on the hub).

    python examples/images/make_shapes.py            # rewrites the images, both files and the model
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHAPES = ("circle", "square", "triangle", "cross")
SIZE = 32  # pixels a side
TRAIN_PER_SHAPE, EVAL_PER_SHAPE = 150, 25
SEED = 20261205


def draw(shape: str, rng: random.Random):
    """One picture: a shape of random colour, size and place on a noisy background of another colour."""
    from PIL import Image, ImageDraw

    background = tuple(rng.randint(0, 90) for _ in range(3))
    image = Image.new("RGB", (SIZE, SIZE), background)
    pen = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 5)):  # clutter: short faint strokes, so the shape is found, not just any bright pixel
        x, y = rng.randrange(SIZE), rng.randrange(SIZE)
        pen.line((x, y, x + rng.randint(-6, 6), y + rng.randint(-6, 6)), fill=tuple(min(255, c + rng.randint(30, 70)) for c in background))
    colour = tuple(rng.randint(140, 255) for _ in range(3))
    r = rng.randint(7, 12)
    cx, cy = rng.randint(r + 1, SIZE - r - 2), rng.randint(r + 1, SIZE - r - 2)
    if shape == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        pen.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "triangle":
        pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        w = max(2, r // 3)
        pen.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
        pen.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
    return image


def write_split(name: str, per_shape: int, rng: random.Random, out: Path) -> int:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for number in range(per_shape * len(SHAPES)):
        shape = SHAPES[number % len(SHAPES)]
        path = folder / f"{shape}_{number:04d}.png"
        draw(shape, rng).save(path, optimize=True)
        rows.append({"image": f"{name}/{path.name}", "label": shape})
    rng.shuffle(rows)
    (out / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return len(rows)


def write_model(out: Path) -> None:
    """A small ViT from a config, seeded: 32 px images in 4 x 4 patches, 4 layers of width 64."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(SEED)
    config = ViTConfig(image_size=SIZE, patch_size=4, num_channels=3, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                       intermediate_size=128, num_labels=len(SHAPES))
    ViTForImageClassification(config).save_pretrained(out / "vit-tiny")
    ViTImageProcessor(size={"height": SIZE, "width": SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(out / "vit-tiny")


def main(out: Path = HERE) -> None:
    rng = random.Random(SEED)
    train = write_split("train", TRAIN_PER_SHAPE, rng, out)
    held_out = write_split("eval", EVAL_PER_SHAPE, rng, out)
    if "--data-only" not in sys.argv:
        write_model(out)
    print(f"wrote {train} training and {held_out} held-out images of {len(SHAPES)} shapes to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else HERE)
