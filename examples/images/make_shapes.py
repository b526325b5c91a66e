"""Write the image demos' data: small generated pictures of four shapes (circle, square, triangle, cross) in six
colours (each shade jittered), sizes and places over a cluttered background. Each row of train.jsonl / eval.jsonl
names its image (relative to the file, as datasets' imagefolder metadata does) and its label, the shape: never the
colour. vqa_train.jsonl / vqa_eval.jsonl ask about the same images ("What shape is drawn?", "What colour is the
shape?") with one-word answers, for the vision-language recipe; captions_train.jsonl / captions_eval.jsonl caption
them ("a red circle") for the text-to-image recipe.

Also writes `vit-tiny/` (a small ViT), `llava-tiny/` (a small LLaVA: a CLIP-style vision tower, a projector and a
Llama-style language model, with a tokenizer trained here on the questions and answers) and `sd-tiny/` (a small
Stable Diffusion pipeline: a UNet, a VAE and a CLIP text encoder with a tokenizer of the captions' words), each
initialised from a config with a fixed seed: no pretrained vision model can be downloaded offline, so `adaptkit run
image_cls`, `vlm_lora_sft` and `sd_lora` train for real on a fresh checkout. For real work set
model=google/vit-base-patch16-224-in21k, llava-hf/llava-1.5-7b-hf or stable-diffusion-v1-5/stable-diffusion-v1-5.

    python examples/images/make_shapes.py            # rewrites the images, both files and the model
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (250, 90, 90), "green": (90, 230, 110), "blue": (105, 150, 255), "yellow": (250, 235, 90), "purple": (205, 120, 250),
           "orange": (255, 170, 70)}  # light shades: every shape stands out from the dark background
QUESTIONS = (("What shape is drawn?", "shape"), ("Which shape do you see?", "shape"), ("What shape is in the picture?", "shape"),
             ("What colour is the shape?", "colour"), ("Which colour is it drawn in?", "colour"))
SIZE = 32  # pixels a side
TRAIN_PER_SHAPE, EVAL_PER_SHAPE = 150, 25
SEED = 20261205


def draw(shape: str, colour_name: str, rng: random.Random):
    """One picture: a shape of a jittered shade of the colour, of random size and place, on a dark cluttered background."""
    from PIL import Image, ImageDraw

    background = tuple(rng.randint(0, 50) for _ in range(3))
    image = Image.new("RGB", (SIZE, SIZE), background)
    pen = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 5)):  # clutter: short faint strokes, so the shape is found, not just any bright pixel
        x, y = rng.randrange(SIZE), rng.randrange(SIZE)
        pen.line((x, y, x + rng.randint(-6, 6), y + rng.randint(-6, 6)), fill=tuple(min(255, c + rng.randint(30, 70)) for c in background))
    colour = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in COLOURS[colour_name])
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
    rows, asked, captioned = [], [], []
    for number in range(per_shape * len(SHAPES)):
        shape, colour = SHAPES[number % len(SHAPES)], rng.choice(sorted(COLOURS))
        path = folder / f"{shape}_{number:04d}.png"
        draw(shape, colour, rng).save(path, optimize=True)
        rows.append({"image": f"{name}/{path.name}", "label": shape})
        question, about = rng.choice(QUESTIONS)
        asked.append({"image": f"{name}/{path.name}", "question": question, "answer": shape if about == "shape" else colour})
        captioned.append({"image": f"{name}/{path.name}", "caption": f"a {colour} {shape}"})
    order = list(range(len(rows)))
    rng.shuffle(order)
    for prefix, written in (("", rows), ("vqa_", asked), ("captions_", captioned)):
        (out / f"{prefix}{name}.jsonl").write_text("".join(json.dumps(written[i]) + "\n" for i in order), encoding="utf-8")
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
    write_vlm(out)
    write_diffusion(out)


def write_diffusion(out: Path) -> None:
    """A small Stable Diffusion pipeline from configs, seeded: 32 px images as 16 x 16 x 4 latents (a 2-block VAE),
    a 2-block UNet with cross-attention to a 2-layer CLIP text encoder; a byte-level BPE tokenizer of the captions."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    words = ["a", *COLOURS, *SHAPES]
    bpe = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([" ".join(words)] * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|startoftext|>", "<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>"))
    saved = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split()) if isinstance(m, str) else tuple(m) for m in saved["merges"]]
    tokenizer = CLIPTokenizer(vocab=saved["vocab"], merges=merges, pad_token="<|endoftext|>")
    tokenizer.model_max_length = 16
    torch.manual_seed(SEED)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, max_position_embeddings=16, projection_dim=32,
                                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                        pad_token_id=tokenizer.pad_token_id))
    unet = UNet2DConditionModel(sample_size=SIZE // 2, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        block_out_channels=(8, 16), latent_channels=4, norm_num_groups=8, sample_size=SIZE)
    train_autoencoder(vae, out)
    StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000),
                            safety_checker=None, feature_extractor=None, requires_safety_checker=False).save_pretrained(out / "sd-tiny")


def write_vlm(out: Path) -> None:
    """A small LLaVA from a config, seeded: a CLIP-style tower over 32 px images in 8 x 8 patches (16 image tokens), a
    projector, a 2-layer Llama; a byte-level BPE tokenizer of the questions and answers with an <image> token and a
    chat template that writes image parts as <image>."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor, PreTrainedTokenizerFast)

    texts = [f"user: {q} assistant: {a}" for q, _ in QUESTIONS for a in (*SHAPES, *COLOURS)]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts * 10, trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>", "<unk>", "<image>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                        extra_special_tokens={"image_token": "<image>"})
    template = ("{% for m in messages %}{{ m['role'] }}: {% if m['content'] is string %}{{ m['content'] }}{% else %}"
                "{% for part in m['content'] %}{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}"
                "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}{{ eos_token }}\n{% endfor %}"
                "{% if add_generation_prompt %}assistant: {% endif %}")
    tokenizer.chat_template = template
    images = CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}, image_mean=[0.5] * 3,
                                image_std=[0.5] * 3)
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
                               chat_template=template, num_additional_image_tokens=1)
    torch.manual_seed(SEED)
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, image_size=SIZE,
                              patch_size=8, projection_dim=64)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    LlavaForConditionalGeneration(config).save_pretrained(out / "llava-tiny")
    processor.save_pretrained(out / "llava-tiny")


def train_autoencoder(vae, out: Path, steps: int = 600) -> None:
    """Teach the demo's VAE to encode and decode the training pictures (reconstruction error plus a small KL term, as
    Stable Diffusion's autoencoder was trained), then scale its latents to unit variance (its scaling_factor, as SD's
    0.18215 was chosen): a diffusion LoRA then learns in a latent space that means something, and its samples decode
    to pictures rather than noise. A UNet trained from scratch is the diffusion model's job, not this script's."""
    import numpy as np
    import torch
    from PIL import Image

    rows = [json.loads(line) for line in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    pixels = torch.stack([torch.from_numpy(np.asarray(Image.open(out / r["image"]).convert("RGB"), dtype=np.float32)).permute(2, 0, 1)
                          for r in rows]) / 127.5 - 1
    optimizer = torch.optim.AdamW(vae.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(steps):
        batch = pixels[torch.randint(0, len(pixels), (32,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        decoded = vae.decode(posterior.sample(generator)).sample
        loss = torch.nn.functional.mse_loss(decoded, batch) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        std = float(vae.encode(pixels[:256]).latent_dist.mean.std())
    vae.register_to_config(scaling_factor=round(1 / std, 5))
    vae.eval()


def main(out: Path = HERE) -> None:
    rng = random.Random(SEED)
    train = write_split("train", TRAIN_PER_SHAPE, rng, out)
    held_out = write_split("eval", EVAL_PER_SHAPE, rng, out)
    if "--data-only" not in sys.argv:
        write_model(out)
    print(f"wrote {train} training and {held_out} held-out images of {len(SHAPES)} shapes to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else HERE)
