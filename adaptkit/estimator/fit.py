"""Fit and step-down: when a setup does not fit, the cheapest changes that make it fit.

Each kind of change has a cost (speed, quality or money lost). Every combination of kinds is tried with
its mildest setting that fits (the largest micro-batch, the longest sequence, the fewest GPUs); the
minimal combinations that fit are returned, cheapest first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import combinations

from adaptkit.estimator.architectures import Architecture
from adaptkit.estimator.memory import Setup, estimate_memory

MAX_GPUS = 64
MAX_SUGGESTIONS = 4
COST = {"gc": 1.0, "cache": 0.3, "vision": 0.5, "loss": 0.3, "batch": 0.5, "shard": 0.5, "precision": 1.5, "optim": 1.0,
        "quant": 2.0, "lora": 2.5, "images": 1.5, "resolution": 3.0, "seq": 4.0,
        "gpus": 3.0}  # sharding over the GPUs you have keeps a 16-bit base: cheaper than a 4-bit one, which dequantizes every pass
# (also the order changes apply in: the fixed ones first, then those searched for the mildest setting that fits)


@dataclass
class Change:
    description: str
    setup: Setup
    peak_gb: float
    cost: float = 0.0
    short: str = ""  # a few words, for tables

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {"change": self.description, "peak_memory_gb": round(self.peak_gb, 2), "setup": asdict(self.setup)}


@lru_cache(maxsize=4096)
def _peak(arch: Architecture, setup: Setup) -> float:
    return estimate_memory(arch, setup).peak_gb


def _kinds(s: Setup) -> list[str]:
    """The kinds of change that apply to this setup."""
    kinds = []
    if s.trains and not s.gradient_checkpointing:
        kinds.append("gc")
    unet = s.resolution is not None  # a resolved diffusion setup: its size is the image, not a token sequence
    if unet and s.trains and not s.cached_inputs:
        kinds.append("cache")
    if unet and s.resolution > 256:
        kinds.append("resolution")
    if s.trains and s.images_in_seq and (s.image_tokens or 0) > 64:
        kinds.append("images")
    if s.trains_all_weights and s.images_in_seq and not s.freeze_vision:
        kinds.append("vision")
    if s.trains and not s.chunked_loss and not unet:
        kinds.append("loss")
    if s.batch_size > 1:
        kinds.append("batch")
    if s.trains and s.num_gpus > 1 and s.sharding == "none":
        kinds.append("shard")
    if s.trains_all_weights and s.precision != "bf16":
        kinds.append("precision")
    if s.trains_all_weights and s.optimizer == "adamw":
        kinds.append("optim")
    if s.trains_all_weights:
        kinds.append("lora")
    if s.quantization == "none":
        kinds.append("quant")
    if (s.text_tokens > 128 if s.images_in_seq else s.seq_len > 256) and not unet:
        kinds.append("seq")
    if s.sharding not in ("zero3", "fsdp"):
        kinds.append("gpus")
    return kinds


def _fixed(s: Setup, kind: str) -> tuple[Setup, str]:
    """Apply a change with no setting to search."""
    if kind == "gc":
        return replace(s, gradient_checkpointing=True), "gradient checkpointing (20-30% slower)"
    if kind == "loss":
        return replace(s, chunked_loss=True), "chunked cross-entropy (use_liger_kernel=True)"
    if kind == "vision":
        return replace(s, freeze_vision=True), "the vision tower frozen (freeze_vision_tower: the projector and language model train)"
    if kind == "cache":
        return replace(s, cached_inputs=True), "latents and text embeddings computed beforehand (the VAE and text encoders off the GPU)"
    if kind == "optim":
        return replace(s, optimizer="adamw8bit"), "8-bit AdamW (bitsandbytes)"
    if kind == "shard":
        return replace(s, sharding="zero3"), f"ZeRO-3/FSDP over your {s.num_gpus} GPUs (the 16-bit base sharded)"
    if kind == "precision":
        return replace(s, precision="bf16"), "pure bf16 weights and optimizer states (no fp32 masters)"
    if kind == "lora":
        reference = "auto" if s.dpo_reference == "copy" else s.dpo_reference  # LoRA's reference is the base, adapters off
        return (replace(s, adapter="lora", precision="bf16", optimizer="adamw", dpo_reference=reference, freeze_vision=False),
                "LoRA (r=16, all linear layers) instead of full weights")
    if kind == "quant":
        if not s.trains:
            return replace(s, quantization="4bit"), "4-bit weights (NF4)"
        if s.trains_all_weights:  # a 4-bit base needs adapters
            lora, _ = _fixed(s, "lora")
            return replace(lora, quantization="4bit"), "QLoRA (LoRA on a 4-bit base) instead of full weights"
        return replace(s, quantization="4bit"), "4-bit base (QLoRA; needs bitsandbytes and CUDA)"
    raise ValueError(kind)


def _search(arch: Architecture, s: Setup, kind: str, device_gb: float) -> tuple[Setup, str, float] | None:
    """Apply a change with a setting: the mildest one that fits, or the strongest if none does."""
    if kind == "batch":
        options = [(replace(s, batch_size=b), f"micro-batch {b} with gradient accumulation {-(-s.batch_size // b)}", 0.0)
                   for b in _halvings(s.batch_size)]
    elif kind == "images":  # fewer tokens an image: a lower resolution, or the processor's max_pixels
        options = [(replace(s, seq_len=s.text_tokens + n, image_tokens=n),
                    f"{n} image tokens an example (fewer or smaller images: a lower resolution or the processor's max_pixels, "
                    "where the model allows)", s.image_tokens / n - 1) for n in _halvings(s.image_tokens, 64)]
    elif kind == "resolution":
        options = [(replace(s, resolution=r, seq_len=(r // 8) ** 2), f"training at {r} px", s.resolution / r - 1)
                   for r in _halvings(s.resolution, 256) if r % 8 == 0]
    elif kind == "seq" and s.images_in_seq:  # a VLM: the text is truncated, its images' tokens stay
        options = [(replace(s, seq_len=n + s.image_tokens), f"text truncated to {n} tokens (beside the images' {s.image_tokens:,})",
                    s.text_tokens / n - 1) for n in _halvings(s.text_tokens, 64)]
    elif kind == "seq":
        options = [(replace(s, seq_len=n), f"sequences truncated to {n} tokens", s.seq_len / n - 1) for n in _halvings(s.seq_len, 256)]
    else:  # gpus: memory falls as GPUs are added, so bisect for the fewest that fit
        sharding = "zero3" if s.trains else "none"
        how = "ZeRO-3/FSDP sharding" if s.trains else "the model split across them"
        option = lambda g: (replace(s, num_gpus=g, sharding=sharding), f"{g} GPUs with {how}", 0.1 * g)  # noqa: E731
        low, high = max(2, s.num_gpus + (0 if s.trains and s.sharding == "none" else 1)), MAX_GPUS
        if low > high or _peak(arch, option(high)[0]) > device_gb:
            return option(high) if low <= high else None
        while low < high:
            middle = (low + high) // 2
            if _peak(arch, option(middle)[0]) <= device_gb:
                high = middle
            else:
                low = middle + 1
        return option(low)
    for setup, text, extra in options:
        if _peak(arch, setup) <= device_gb:
            return setup, text, extra
    return options[-1] if options else None


def _halvings(value: int, floor: int = 1):
    value //= 2
    while value >= floor:
        yield value
        value //= 2


def _apply(arch: Architecture, s: Setup, kinds: tuple[str, ...], device_gb: float) -> Change | None:
    texts, shorts, cost = [], [], 0.0
    order = [k for k in COST if k in kinds]
    if "quant" in order and "lora" in order:
        order.remove("lora")  # QLoRA covers both
    if "shard" in order and "gpus" in order:
        order.remove("shard")  # more GPUs are sharded anyway
    for kind in order:
        if kind in ("batch", "seq", "gpus", "images", "resolution"):
            found = _search(arch, s, kind, device_gb)
            if found is None:
                return None
            s, text, extra = found
        else:
            s, text = _fixed(s, kind)
            extra = 0.0
        texts.append(text)
        shorts.append(_short(kind, s))
        cost += COST[kind] + extra
    return Change(" + ".join(texts), s, _peak(arch, s), cost, ", ".join(shorts))


def _short(kind: str, s: Setup) -> str:
    return {"gc": "checkpointing", "loss": "chunked loss", "batch": f"micro-batch {s.batch_size}", "precision": "pure bf16",
            "optim": "8-bit Adam", "quant": "4-bit base" if s.trains else "4-bit weights", "lora": "LoRA", "shard": f"ZeRO-3 over {s.num_gpus}",
            "seq": f"{s.seq_len}-token sequences", "gpus": f"{s.num_gpus} GPUs", "cache": "cached inputs", "vision": "frozen vision tower",
            "images": f"{s.image_tokens} tokens an image", "resolution": f"{s.resolution} px"}[kind]


CUDA_ONLY = {"quant", "optim", "loss"}  # bitsandbytes 4-bit and 8-bit, Liger's kernel: CUDA (and ROCm) GPUs
ONE_DEVICE = {"gpus", "shard"}  # Apple silicon: one GPU per machine


def suggest(arch: Architecture, setup: Setup, device_gb: float, device_kind: str = "cuda") -> tuple[list[Change], str | None]:
    """Return (the cheapest minimal changes that make it fit; a plain verdict when nothing does).

    On Apple silicon (`device_kind` mps) only what runs there is suggested: no bitsandbytes, no Liger, no more GPUs."""
    setup = setup.resolved(arch)
    kinds = [k for k in _kinds(setup) if (device_kind != "mps" or k not in CUDA_ONLY | ONE_DEVICE)
             and not (k == "seq" and arch.input_tokens)]  # an image's patches are not truncated
    fitting: list[tuple[frozenset, Change]] = []
    for size in range(1, len(kinds) + 1):
        for combo in combinations(kinds, size):
            if any(done <= set(combo) for done, _ in fitting):
                continue  # a smaller combination already fits
            change = _apply(arch, setup, combo, device_gb)
            if change and change.peak_gb <= device_gb:
                fitting.append((frozenset(combo), change))
    if fitting:
        ranked = sorted((c for _, c in fitting), key=lambda c: c.cost)
        return ranked[:MAX_SUGGESTIONS], None
    everything = _apply(arch, setup, tuple(k for k in kinds if k != "gpus"), device_gb)
    smallest = everything.peak_gb if everything else _peak(arch, setup)
    what = everything.description if everything else "the smallest setup"
    if device_kind == "mps":
        return [], (f"does not fit at all: even with {what} it needs {smallest:.1f} GB, more than the {device_gb:g} GB "
                    "Apple silicon's GPU may use (4-bit QLoRA and 8-bit optimizers need bitsandbytes on a CUDA or ROCm GPU)")
    return [], (f"does not fit at all: even with {what} it needs {smallest:.1f} GB per device, more than "
                f"{device_gb:g} GB, and up to {MAX_GPUS} GPUs do not close the gap")
