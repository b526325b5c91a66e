"""The UNet activation model against what autograd keeps, on real Stable Diffusion shapes (random weights, CPU).

    python benchmarks/unet_activations.py [--json]

For Stable Diffusion 1.5 at 256 and 512 px and SDXL at 256 px (a batch of one, no gradient checkpointing): the bytes
autograd saves for the backward pass during one forward (saved-tensor hooks; the weights left out, each storage view
counted once) beside `adaptkit.estimator.memory.unet_activations`, and their ratio. The per-block constant
(UNET_BLOCK_ELEMENTS) was read off these rows. Needs diffusers (pip install 'adaptkit[train]'); about 4 GB of RAM.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CASES = (("stable-diffusion-v1-5/stable-diffusion-v1-5", 256), ("stable-diffusion-v1-5/stable-diffusion-v1-5", 512),
         ("stabilityai/stable-diffusion-xl-base-1.0", 256))


def saved_bytes(config: dict, pixels: int) -> int:
    """What autograd keeps for one forward at `pixels` (gradients reach every unit through the first convolution)."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config).requires_grad_(False)
    unet.conv_in.requires_grad_(True)
    weights = {p.untyped_storage().data_ptr() for p in unet.parameters()}
    saved: dict[tuple, int] = {}

    def keep(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[(storage.data_ptr(), tensor.storage_offset(), tensor.numel())] = tensor.numel() * tensor.element_size()
        return tensor

    side = pixels // 8
    extra = {}
    if config.get("addition_embed_type") == "text_time":
        extra["added_cond_kwargs"] = {"text_embeds": torch.randn(1, 1280), "time_ids": torch.randn(1, 6)}
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        unet(torch.randn(1, 4, side, side), 10, encoder_hidden_states=torch.randn(1, 77, config["cross_attention_dim"]), **extra)
    return sum(saved.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from adaptkit._yaml import load_yaml
    from adaptkit.estimator.architectures import DATA, load_model
    from adaptkit.estimator.memory import Setup, unet_activations

    table = load_yaml(DATA / "models.yaml")
    rows = []
    for name, pixels in CASES:
        config = {k: v for k, v in table[name]["config"].items() if k != "model_type"}
        measured = saved_bytes(config, pixels)
        estimate = unet_activations(load_model(name, online=False), Setup(resolution=pixels, seq_len=1), 4)
        rows.append({"model": name, "pixels": pixels, "measured_mb": round(measured / 1e6, 1), "estimate_mb": round(estimate / 1e6, 1),
                     "ratio": round(estimate / measured, 3)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['model']:45} {r['pixels']:5} px  saved {r['measured_mb']:8.1f} MB  estimate {r['estimate_mb']:8.1f} MB  ratio {r['ratio']:.3f}")
    return 0 if all(0.8 < r["ratio"] < 1.25 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
