"""Model architectures from a Hugging Face config.json, and parameter counts from the config alone."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from adaptkit._yaml import load_yaml
from adaptkit.errors import InputError, brief, one_line

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Linear:
    """One linear module of a block. `role` lets llama-style names (q_proj, ...) pick it in any family."""

    name: str
    role: str
    d_in: int
    d_out: int
    bias: bool = False
    experts: int = 1  # mixture-of-experts: copies of this weight, of which `active` serve each token
    active: int = 1
    fused: bool = False  # a stacked 3-D parameter (MoE experts, router) in transformers 5: not an nn.Linear LoRA can wrap

    @property
    def params(self) -> int:
        return self.experts * (self.d_in * self.d_out + (self.d_out if self.bias else 0))

    @property
    def active_params(self) -> int:
        return self.params // self.experts * self.active


@dataclass(frozen=True)
class Block:
    """A repeated transformer block (decoders have one kind; T5 has encoder and decoder blocks)."""

    count: int
    linears: tuple[Linear, ...]
    norm_params: int
    extra_params: int = 0  # e.g. T5 relative attention bias (counted once, in the first block)

    @property
    def params(self) -> int:
        return sum(lin.params for lin in self.linears) + self.norm_params

    @property
    def active_params(self) -> int:
        return sum(lin.active_params for lin in self.linears) + self.norm_params


@dataclass(frozen=True)
class Architecture:
    """What memory and compute depend on, read from a config."""

    name: str
    family: str
    vocab_size: int
    hidden: int
    layers: int  # all blocks (encoder + decoder for T5)
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    gated_mlp: bool
    tied_embeddings: bool
    blocks: tuple[Block, ...]
    embedding_params: int
    head_params: int  # 0 when tied, or for encoders without an LM head
    other_params: int  # final norms, pooler, relative attention bias
    kind: str = "decoder"  # decoder | encoder | encoder-decoder
    dropout: bool = False
    attention: str = "sdpa"  # what transformers uses by default: sdpa, or eager (T5)
    notes: tuple[str, ...] = field(default_factory=tuple)
    context_window: int | None = None  # tokens the model was trained to attend over (config max_position_embeddings)
    image_tokens: int | None = None  # a vision-language model: the language model's tokens for one image (added to the text)
    vision_params: int = 0  # a vision-language model: its vision tower and projector (in other_params), frozen under LoRA
    input_tokens: int | None = None  # an image or audio encoder: the tokens one input is (a ViT's patches and class token,
    # Whisper's encoder frames), whatever a recipe's max_length says
    units: tuple[tuple[str, int, int, int], ...] = ()  # a diffusion UNet, in forward order: (kind, channels in, channels out,
    # downscale of the latent), kind resnet | transformer (channels out: its blocks) | sample; activations are summed over them
    latent_channels: int = 0  # a diffusion UNet: channels of the VAE latent; the latent is resolution / 8 on a side
    sample_size: int = 0  # a diffusion UNet: its native latent side (config sample_size; x 8 is the training resolution in pixels)
    companion_params: int = 0  # a diffusion UNet: the frozen text encoders and VAE beside it (16-bit, unless inputs are cached)
    token_pixels: int = 0  # a dynamic-resolution VLM (Qwen2-VL): pixels on a side of one image token (patch x merge); 0: fixed count

    @property
    def total_params(self) -> int:
        return self.embedding_params + self.head_params + self.other_params + sum(b.count * b.params + b.extra_params for b in self.blocks)

    @property
    def active_params(self) -> int:
        """Parameters each token passes through: the total for dense models, fewer for mixtures of experts."""
        return self.total_params - sum(b.count * (b.params - b.active_params) for b in self.blocks)

    @property
    def is_moe(self) -> bool:
        return any(lin.experts > 1 for b in self.blocks for lin in b.linears)

    @property
    def linear_params(self) -> int:
        """Parameters in the blocks' linear layers (experts included): what 4/8-bit quantization compresses."""
        return sum(b.count * sum(lin.d_in * lin.d_out * lin.experts for lin in b.linears) for b in self.blocks)

    @property
    def largest_layer_params(self) -> int:
        return max([b.params for b in self.blocks] + [self.embedding_params, self.head_params])

    @property
    def largest_linear_params(self) -> int:
        return max(lin.d_in * lin.d_out for b in self.blocks for lin in b.linears)

    def module_names(self) -> list[str]:
        names: list[str] = []
        for block in self.blocks:
            names.extend(lin.name for lin in block.linears if lin.name not in names)
        return names


ROLE_ALIASES = {  # llama-style names -> roles, so `q_proj,v_proj` works for every family
    "q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o",
    "gate_proj": "gate", "up_proj": "up", "down_proj": "down",
}


MAX_DIMENSION = 2**31 - 1  # no real vocabulary, width, depth or context comes near this
MAX_TOTAL_PARAMS = 1e14  # 100T parameters: beyond it a config is a typo, not a model


def _int(config: dict, *keys, default=None) -> int:
    """A size from config.json: a whole number from 1 to 2**31 - 1, or a clear error naming the key."""
    for key in keys:
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSION:
            raise InputError(f"config.json: `{key}` is {brief(value)}; it must be a whole number from 1 to {MAX_DIMENSION:,}")
        return value
    if default is None:
        raise InputError(f"config.json lacks `{keys[0]}`: cannot size this model (pass --params instead)")
    return default


def _decoder(config: dict, family: str, name: str) -> Architecture:
    """Llama, Mistral, Qwen2, Gemma, Gemma2, Phi-3: gated MLP, RMSNorm, grouped KV heads."""
    h = _int(config, "hidden_size")
    layers = _int(config, "num_hidden_layers")
    heads = _int(config, "num_attention_heads")
    kv = _int(config, "num_key_value_heads", default=heads)
    d = _int(config, "head_dim", default=h // heads)
    i = _int(config, "intermediate_size")
    vocab = _int(config, "vocab_size")
    qkv_bias = bool(config.get("attention_bias", family == "qwen2"))
    tied = bool(config.get("tie_word_embeddings", family in ("gemma", "gemma2")))
    linears = (
        Linear("q_proj", "q", h, heads * d, qkv_bias),
        Linear("k_proj", "k", h, kv * d, qkv_bias),
        Linear("v_proj", "v", h, kv * d, qkv_bias),
        Linear("o_proj", "o", heads * d, h, bool(config.get("attention_bias", False))),
        Linear("gate_proj", "gate", h, i),
        Linear("up_proj", "up", h, i),
        Linear("down_proj", "down", i, h),
    )
    norms = (4 if family == "gemma2" else 2) * h
    return Architecture(
        name, family, vocab, h, layers, heads, kv, d, i, True, tied, (Block(layers, linears, norms),),
        embedding_params=vocab * h, head_params=0 if tied else vocab * h, other_params=h,
    )


def _experts(config: dict, h: int, routed: int, top_k: int, size: int, shared: int = 0) -> tuple[Linear, ...]:
    """A mixture-of-experts MLP: a router, `routed` gated experts of width `size` (`top_k` per token), an always-on shared MLP."""
    if top_k > routed:
        raise InputError(f"config.json: {top_k} experts per token but only {routed} experts")
    moe = (
        Linear("router", "router", h, routed, fused=True),
        Linear("experts.gate_proj", "expert", h, size, experts=routed, active=top_k, fused=True),
        Linear("experts.up_proj", "expert", h, size, experts=routed, active=top_k, fused=True),
        Linear("experts.down_proj", "expert", size, h, experts=routed, active=top_k, fused=True),
    )
    if shared:
        moe += (Linear("shared_expert.gate_proj", "gate", h, shared), Linear("shared_expert.up_proj", "up", h, shared),
                Linear("shared_expert.down_proj", "down", shared, h))
    return moe


def _moe(config: dict, family: str, name: str) -> Architecture:
    """Mixtral, Qwen2-MoE, Qwen3-MoE: a Llama-style attention block whose MLP is a routed mixture of experts.

    Memory follows the total parameters (every expert is resident); compute and activations follow the active ones."""
    dense = _decoder({**config, "intermediate_size": config.get("intermediate_size") or 1}, "qwen2" if family == "qwen2_moe" else family, name)
    h = dense.hidden
    routed = _int(config, "num_local_experts", "num_experts")
    top_k = _int(config, "num_experts_per_tok", default=2)
    size = _int(config, "intermediate_size") if family == "mixtral" else _int(config, "moe_intermediate_size")
    shared = _int(config, "shared_expert_intermediate_size") if family == "qwen2_moe" else 0
    attention = dense.blocks[0].linears[:4]
    norms = dense.blocks[0].norm_params + (2 * dense.head_dim if family == "qwen3_moe" else 0)
    linears = attention + _experts(config, h, routed, top_k, size, shared)
    if family == "qwen2_moe":
        linears += (Linear("shared_expert_gate", "router", h, 1),)  # an nn.Linear, unlike the router
    block = Block(dense.layers, linears, norms)
    active_width = top_k * size + shared
    return Architecture(**{**dense.__dict__, "family": family, "blocks": (block,), "intermediate": active_width,
                           "notes": (f"mixture of experts: {routed} experts of width {size}, {top_k} per token"
                                     + (f", plus a shared MLP of width {shared}" if shared else "")
                                     + ": memory counts every expert, compute and activations the active ones",)})


def _deepseek(config: dict, family: str, name: str) -> Architecture:
    """DeepSeek-V2/V3: multi-head latent attention, the first layers dense, the rest routed plus shared experts."""
    h, layers = _int(config, "hidden_size"), _int(config, "num_hidden_layers")
    heads, vocab = _int(config, "num_attention_heads"), _int(config, "vocab_size")
    nope, rope, v = _int(config, "qk_nope_head_dim"), _int(config, "qk_rope_head_dim"), _int(config, "v_head_dim")
    kv_rank = _int(config, "kv_lora_rank")
    q_rank = config.get("q_lora_rank")
    q = ((Linear("q_a_proj", "q", h, _int(config, "q_lora_rank")), Linear("q_b_proj", "q", _int(config, "q_lora_rank"), heads * (nope + rope)))
         if q_rank else (Linear("q_proj", "q", h, heads * (nope + rope)),))
    attention = q + (Linear("kv_a_proj_with_mqa", "k", h, kv_rank + rope), Linear("kv_b_proj", "v", kv_rank, heads * (nope + v)),
                     Linear("o_proj", "o", heads * v, h))
    norms = 2 * h + kv_rank + (_int(config, "q_lora_rank") if q_rank else 0)
    first_dense = min(layers, int(config.get("first_k_dense_replace") or 0))
    dense_i = _int(config, "intermediate_size")
    size, routed = _int(config, "moe_intermediate_size"), _int(config, "n_routed_experts")
    top_k, shared = _int(config, "num_experts_per_tok"), int(config.get("n_shared_experts") or 0)
    mlp = (Linear("gate_proj", "gate", h, dense_i), Linear("up_proj", "up", h, dense_i), Linear("down_proj", "down", dense_i, h))
    blocks = tuple(b for b in (Block(first_dense, attention + mlp, norms),
                               Block(layers - first_dense, attention + _experts(config, h, routed, top_k, size, shared * size), norms))
                   if b.count)
    tied = bool(config.get("tie_word_embeddings", False))
    return Architecture(
        name, family, vocab, h, layers, heads, heads, nope + rope, top_k * size + shared * size, True, tied, blocks,
        embedding_params=vocab * h, head_params=0 if tied else vocab * h, other_params=h,
        notes=(f"mixture of experts: {routed} experts of width {size}, {top_k} per token, {shared} shared, the first {first_dense} "
               "layers dense; latent attention: memory counts every expert, compute and activations the active ones",),
    )


def _phi(config: dict, name: str) -> Architecture:
    """Phi-1/1.5/2: parallel attention and plain MLP, biases everywhere, one LayerNorm per block."""
    h, layers, heads = _int(config, "hidden_size"), _int(config, "num_hidden_layers"), _int(config, "num_attention_heads")
    kv = _int(config, "num_key_value_heads", default=heads)
    d, i, vocab = h // heads, _int(config, "intermediate_size"), _int(config, "vocab_size")
    linears = (
        Linear("q_proj", "q", h, heads * d, True), Linear("k_proj", "k", h, kv * d, True),
        Linear("v_proj", "v", h, kv * d, True), Linear("dense", "o", heads * d, h, True),
        Linear("fc1", "up", h, i, True), Linear("fc2", "down", i, h, True),
    )
    tied = bool(config.get("tie_word_embeddings", False))
    return Architecture(
        name, "phi", vocab, h, layers, heads, kv, d, i, False, tied, (Block(layers, linears, 2 * h),),
        embedding_params=vocab * h, head_params=0 if tied else vocab * h + vocab, other_params=2 * h,
        dropout=False,
    )


def _gpt2(config: dict, family: str, name: str) -> Architecture:
    """GPT-2 and GPT-BigCode (multi-query): learned positions, plain MLP, biases, tied head."""
    h = _int(config, "n_embd", "hidden_size")
    layers = _int(config, "n_layer", "num_hidden_layers")
    heads = _int(config, "n_head", "num_attention_heads")
    i = _int(config, "n_inner", default=4 * h)
    vocab, positions = _int(config, "vocab_size"), _int(config, "n_positions", default=1024)
    d = h // heads
    kv = 1 if config.get("multi_query") else heads
    linears = (
        Linear("c_attn", "qkv", h, h + 2 * kv * d, True), Linear("c_proj", "o", h, h, True),
        Linear("c_fc", "up", h, i, True), Linear("mlp.c_proj", "down", i, h, True),
    )
    return Architecture(
        name, family, vocab, h, layers, heads, kv, d, i, False, True, (Block(layers, linears, 4 * h),),
        embedding_params=vocab * h + positions * h, head_params=0, other_params=2 * h, dropout=True,
    )


def _neox(config: dict, family: str, name: str) -> Architecture:
    """GPT-NeoX / Pythia and BLOOM: fused QKV, plain 4h MLP, biases, two LayerNorms per block."""
    h = _int(config, "hidden_size", "n_embed")
    layers = _int(config, "num_hidden_layers", "n_layer")
    heads = _int(config, "num_attention_heads", "n_head")
    i = _int(config, "intermediate_size", default=4 * h)
    vocab = _int(config, "vocab_size")
    linears = (
        Linear("query_key_value", "qkv", h, 3 * h, True), Linear("dense", "o", h, h, True),
        Linear("dense_h_to_4h", "up", h, i, True), Linear("dense_4h_to_h", "down", i, h, True),
    )
    tied = bool(config.get("tie_word_embeddings", family == "bloom"))
    other = 2 * h + (2 * h if family == "bloom" else 0)  # final norm (+ BLOOM's embedding LayerNorm)
    return Architecture(
        name, family, vocab, h, layers, heads, heads, h // heads, i, False, tied, (Block(layers, linears, 4 * h),),
        embedding_params=vocab * h, head_params=0 if tied else vocab * h, other_params=other,
    )


def _bert(config: dict, family: str, name: str) -> Architecture:
    """BERT-style encoders (BERT, RoBERTa, XLM-R, ELECTRA, MiniLM): base model with pooler, no LM head."""
    h, layers = _int(config, "hidden_size"), _int(config, "num_hidden_layers")
    heads, i = _int(config, "num_attention_heads"), _int(config, "intermediate_size")
    vocab = _int(config, "vocab_size")
    positions, types = _int(config, "max_position_embeddings", default=512), _int(config, "type_vocab_size", default=2)
    linears = (
        Linear("query", "q", h, h, True), Linear("key", "k", h, h, True), Linear("value", "v", h, h, True),
        Linear("attention.output.dense", "o", h, h, True),
        Linear("intermediate.dense", "up", h, i, True), Linear("output.dense", "down", i, h, True),
    )
    embeddings = (vocab + positions + types) * h + 2 * h
    pooler = h * h + h
    return Architecture(
        name, family, vocab, h, layers, heads, heads, h // heads, i, False, True, (Block(layers, linears, 4 * h),),
        embedding_params=embeddings, head_params=0, other_params=pooler, kind="encoder", dropout=True,
    )


def _vit(config: dict, family: str, name: str) -> Architecture:
    """ViT-style image encoders (ViT, DeiT): a patch embedding, a class token and BERT's blocks. An image is
    (image_size / patch_size)^2 patches plus the class token; the classification head is counted by the task, not here."""
    h, layers = _int(config, "hidden_size"), _int(config, "num_hidden_layers")
    heads, i = _int(config, "num_attention_heads"), _int(config, "intermediate_size")
    size, patch, channels = _int(config, "image_size", default=224), _int(config, "patch_size", default=16), _int(config, "num_channels", default=3)
    patches = (size // patch) ** 2
    bert = _bert({"hidden_size": h, "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": i,
                  "vocab_size": 1, "max_position_embeddings": 1, "type_vocab_size": 1}, family, name)
    tokens = patches + (2 if family == "deit" else 1)  # the class token (DeiT: and a distillation token)
    embeddings = channels * patch * patch * h + h + (tokens - patches) * h + tokens * h  # patch projection, the tokens, positions
    linears = (Linear("q_proj", "q", h, h, True), Linear("k_proj", "k", h, h, True), Linear("v_proj", "v", h, h, True),
               Linear("o_proj", "o", h, h, True), Linear("fc1", "up", h, i, True), Linear("fc2", "down", i, h, True))  # transformers 5's names
    return replace(bert, vocab_size=0, blocks=(Block(layers, linears, 4 * h),), embedding_params=embeddings, other_params=2 * h,
                   input_tokens=tokens)  # other: the final norm


def _whisper(config: dict, family: str, name: str) -> Architecture:
    """Whisper: two convolutions over the log-mel frames, an encoder over max_source_positions frames (1,500 for 30 s),
    a decoder with cross-attention over them; learned decoder positions, fixed (sinusoidal) encoder ones, the output
    layer tied to the token embeddings."""
    h, vocab, mels = _int(config, "d_model"), _int(config, "vocab_size"), _int(config, "num_mel_bins", default=80)
    enc, dec = _int(config, "encoder_layers"), _int(config, "decoder_layers")
    heads = _int(config, "encoder_attention_heads")
    enc_ff, dec_ff = _int(config, "encoder_ffn_dim"), _int(config, "decoder_ffn_dim")
    frames, targets = _int(config, "max_source_positions", default=1500), _int(config, "max_target_positions", default=448)
    attention = lambda prefix: (Linear(f"{prefix}q_proj", "q", h, h, True), Linear(f"{prefix}k_proj", "k", h, h),  # noqa: E731
                                Linear(f"{prefix}v_proj", "v", h, h, True), Linear(f"{prefix}out_proj", "o", h, h, True))
    encoder = Block(enc, attention("") + (Linear("fc1", "up", h, enc_ff, True), Linear("fc2", "down", enc_ff, h, True)), 4 * h)
    decoder = Block(dec, attention("") + attention("encoder_attn.") + (Linear("fc1", "up", h, dec_ff, True),
                                                                       Linear("fc2", "down", dec_ff, h, True)), 6 * h)
    convolutions = mels * h * 3 + h + h * h * 3 + h
    tied = bool(config.get("tie_word_embeddings", True))
    return Architecture(
        name, family, vocab, h, enc + dec, heads, heads, h // heads, enc_ff, False, tied, (encoder, decoder),
        embedding_params=vocab * h + targets * h + frames * h + convolutions, head_params=0 if tied else vocab * h,
        other_params=4 * h, kind="encoder-decoder", dropout=True, input_tokens=frames)  # other: the two final norms


def _vit_block(width: int, mlp: int) -> int:
    """One pre-norm transformer block of a CLIP/ViT-style tower: attention with biased q, k, v and output projections
    (fused or not, the same count), a biased two-layer MLP, two LayerNorms."""
    return 4 * (width * width + width) + (width * mlp + mlp) + (mlp * width + width) + 4 * width


def _clip_vision(config: dict) -> tuple[int, int]:
    """(parameters, patches) of a CLIP/SigLIP-style vision tower: a patch convolution, class token and positions, pre and
    post norms, and pre-norm blocks of attention (biased q/k/v/out) and an MLP (fc1/fc2)."""
    h, i = _int(config, "hidden_size", default=1024), _int(config, "intermediate_size", default=4096)
    layers, size = _int(config, "num_hidden_layers", default=24), _int(config, "image_size", default=224)
    patch, channels = _int(config, "patch_size", default=14), _int(config, "num_channels", default=3)
    patches = (size // patch) ** 2
    block = _vit_block(h, i)
    return channels * patch * patch * h + h + (patches + 1) * h + 2 * h + layers * block + 2 * h, patches


def _llava(config: dict, family: str, name: str) -> Architecture:
    """LLaVA-style vision-language models: a CLIP vision tower, a two-layer projector into the language model's width,
    and a language model read from its own text_config. An image is the tower's patches (the class token dropped by
    the default feature strategy) as that many tokens of the language model's sequence."""
    text, vision = dict(config.get("text_config") or {}), dict(config.get("vision_config") or {})
    text.setdefault("model_type", "llama")
    language = from_config(text, name)
    tower, patches = _clip_vision(vision)
    width, text_width = _int(vision, "hidden_size", default=1024), language.hidden
    projector = width * text_width + text_width + text_width * text_width + text_width
    strategy = config.get("vision_feature_select_strategy", "default")
    extra = tower + projector
    return replace(language, name=name, family=family, other_params=language.other_params + extra, vision_params=extra,
                   image_tokens=patches + (1 if strategy == "full" else 0))


def _qwen(config: dict, family: str, name: str) -> Architecture:
    """Qwen (the first generation, `model_type: qwen`, remote code): a fused QKV projection with biases (c_attn), a gated
    MLP as w1 and w2 (each half of the config's intermediate_size) and mlp.c_proj, RMSNorm. With a `visual` block it is
    Qwen-VL: a ViT-bigG-style tower (in_proj/out_proj attention, c_fc/c_proj MLP) and a one-layer cross-attention
    resampler that turns every image into a fixed 256 tokens of the language model's width."""
    h, layers = _int(config, "hidden_size"), _int(config, "num_hidden_layers")
    heads, vocab = _int(config, "num_attention_heads"), _int(config, "vocab_size")
    d = _int(config, "kv_channels", default=h // heads)
    i = _int(config, "intermediate_size") // 2  # Qwen's config counts both halves of the gated MLP
    tied = bool(config.get("tie_word_embeddings", False))
    linears = (
        Linear("c_attn", "qkv", h, 3 * heads * d, True), Linear("attn.c_proj", "o", heads * d, h),
        Linear("w1", "gate", h, i), Linear("w2", "up", h, i), Linear("mlp.c_proj", "down", i, h),
    )
    language = Architecture(
        name, family, vocab, h, layers, heads, heads, d, i, True, tied, (Block(layers, linears, 2 * h),),
        embedding_params=vocab * h, head_params=0 if tied else vocab * h, other_params=h)
    visual = config.get("visual")
    if not isinstance(visual, dict):
        return language
    width, depth = _int(visual, "width"), _int(visual, "layers")
    patch, size, out = _int(visual, "patch_size", default=14), _int(visual, "image_size", default=448), _int(visual, "output_dim", default=h)
    ratio = visual.get("mlp_ratio", 4.0)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1000:
        raise InputError(f"config.json: `visual.mlp_ratio` is {brief(ratio)}; it must be a positive number")
    mlp = int(width * ratio)
    queries = 256  # Qwen-VL's resampler: a 16 x 16 grid of learned queries, whatever the image size
    block = _vit_block(width, mlp)  # in_proj (q, k, v fused) and out_proj, c_fc and c_proj
    tower = 3 * patch * patch * width + queries * width + 2 * width + depth * block  # patches, positions, ln_pre, blocks
    resampler = (2 * queries * out + width * out  # positions, queries, kv projection
                 + 4 * out * out + 4 * out + 4 * out + 2 * out + out * out)  # attention, ln_q and ln_kv, ln_post, proj
    extra = tower + resampler
    del size  # the tower's positions are interpolated to any size; its tokens stay 256
    return replace(language, other_params=language.other_params + extra, vision_params=extra, image_tokens=queries + 2,
                   notes=("Qwen-VL: every image is 256 resampled tokens plus its two boundary tokens",))


def _resnet(c_in: int, c_out: int, temb: int = 0) -> int:
    """diffusers' ResnetBlock2D: two GroupNorms, two 3x3 convolutions, the time embedding's projection, a 1x1 shortcut."""
    return 2 * c_in + c_in * c_out * 9 + c_out + (temb * c_out + c_out if temb else 0) + 2 * c_out + c_out * c_out * 9 + c_out + (
        c_in * c_out + c_out if c_in != c_out else 0)


def _per_level(value, count: int, key: str) -> list[int]:
    values = value if isinstance(value, list) else [value] * count
    if len(values) != count:
        raise InputError(f"config.json: `{key}` has {len(values)} entries for {count} blocks")
    return [_int({key: v}, key) for v in values]


def _unet(config: dict, family: str, name: str) -> Architecture:
    """A diffusers UNet2DConditionModel (Stable Diffusion 1.x/2.x, SDXL), from unet/config.json: resnets and
    cross-attention transformer blocks at each resolution of the latent, down and up with skip connections. The blocks'
    attention and feed-forward layers are `Block`s (what LoRA wraps and what gets quantized); the rest (convolutions,
    norms, time embeddings) is `other_params`. The text encoders and the VAE are `companion_params`."""
    for key in ("block_out_channels", "down_block_types", "up_block_types"):
        if config.get(key) is not None and not isinstance(config[key], list):
            raise InputError(f"config.json: `{key}` is {brief(config[key])}; it must be a list, one entry per level")
    channels = [_int({"block_out_channels": c}, "block_out_channels") for c in config.get("block_out_channels") or [320, 640, 1280, 1280]]
    downs = list(config.get("down_block_types") or ["CrossAttnDownBlock2D"] * (len(channels) - 1) + ["DownBlock2D"])
    ups = list(config.get("up_block_types") or ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (len(channels) - 1))
    if not len(downs) == len(ups) == len(channels):
        raise InputError("config.json: down_block_types, up_block_types and block_out_channels must have one entry per level")
    per_block = _int(config, "layers_per_block", default=2)
    depth = _per_level(config.get("transformer_layers_per_block", 1), len(channels), "transformer_layers_per_block")
    cross = _int(config, "cross_attention_dim", default=768)
    c0, latent = channels[0], _int(config, "in_channels", default=4)
    temb = _int(config, "time_embedding_dim", default=4 * c0)
    units: list[tuple[str, int, int, int]] = []
    conv = latent * c0 * 9 + c0 + 2 * c0 + c0 * _int(config, "out_channels", default=latent) * 9 + latent  # conv_in, norm, conv_out
    conv += c0 * temb + temb + temb * temb + temb  # the timestep embedding
    if config.get("addition_embed_type") == "text_time":  # SDXL: pooled text and size/crop conditioning
        extra = _int(config, "projection_class_embeddings_input_dim")
        conv += extra * temb + temb + temb * temb + temb
    levels: dict[int, int] = {}  # channels -> BasicTransformerBlocks at that width

    def transformer(c: int, layers: int, scale: int) -> int:
        units.append(("transformer", c, layers, scale))
        levels[c] = levels.get(c, 0) + layers
        return 2 * c + 2 * (c * c + c)  # GroupNorm, proj_in and proj_out (1x1 conv or linear: the same count)

    c_prev, scale = c0, 1
    for index, kind in enumerate(downs):
        c = channels[index]
        for layer in range(per_block):
            units.append(("resnet", c_prev if layer == 0 else c, c, scale))
            conv += _resnet(c_prev if layer == 0 else c, c, temb)
            if "CrossAttn" in kind:
                conv += transformer(c, depth[index], scale)
        c_prev = c
        if index < len(downs) - 1:
            units.append(("sample", c, c, scale))
            conv += c * c * 9 + c
            scale *= 2
    mid = channels[-1]
    if config.get("mid_block_type", "UNetMidBlock2DCrossAttn") is not None:
        units.append(("resnet", mid, mid, scale))
        conv += 2 * _resnet(mid, mid, temb) + transformer(mid, depth[-1], scale)
        units.append(("resnet", mid, mid, scale))
    reversed_channels, reversed_depth = channels[::-1], depth[::-1]
    out = reversed_channels[0]
    for index, kind in enumerate(ups):
        prev, out = out, reversed_channels[index]
        skip_in = reversed_channels[min(index + 1, len(channels) - 1)]
        for layer in range(per_block + 1):
            c_in = (prev if layer == 0 else out) + (skip_in if layer == per_block else out)
            units.append(("resnet", c_in, out, scale))
            conv += _resnet(c_in, out, temb)
            if "CrossAttn" in kind:
                conv += transformer(out, reversed_depth[index], scale)
        if index < len(ups) - 1:
            scale //= 2
            units.append(("sample", out, out, scale))
            conv += out * out * 9 + out
    blocks = tuple(Block(count, (
        Linear("attn1.to_q", "q", c, c), Linear("attn1.to_k", "k", c, c), Linear("attn1.to_v", "v", c, c),
        Linear("attn1.to_out.0", "o", c, c, True),
        Linear("attn2.to_q", "q", c, c), Linear("attn2.to_k", "k", cross, c), Linear("attn2.to_v", "v", cross, c),
        Linear("attn2.to_out.0", "o", c, c, True),
        Linear("ff.net.0.proj", "up", c, 8 * c, True), Linear("ff.net.2", "down", 4 * c, c, True)), 6 * c) for c, count in levels.items())
    heads = config.get("attention_head_dim") or 8
    heads = max(heads) if isinstance(heads, list) else heads
    return Architecture(
        name, family, 0, c0, sum(levels.values()), int(heads), int(heads), max(levels or [c0]) // int(heads), 4 * c0, True, False,
        blocks, embedding_params=0, head_params=0, other_params=conv, kind="unet", units=tuple(units), latent_channels=latent,
        sample_size=_int(config, "sample_size", default=64), notes=("a diffusion UNet: its activations follow the latent "
                                                                    "(resolution / 8 on a side) at each level, not a token sequence",))


def _clip_text(config: dict) -> int:
    """A CLIP text encoder's parameters (CLIPTextModel or ...WithProjection): token and position embeddings, pre-norm
    blocks with biased attention and an MLP, the final norm, and the projection where there is one."""
    h, i = _int(config, "hidden_size", default=768), _int(config, "intermediate_size", default=3072)
    layers, vocab = _int(config, "num_hidden_layers", default=12), _int(config, "vocab_size", default=49408)
    positions = _int(config, "max_position_embeddings", default=77)
    block = _vit_block(h, i)
    with_projection = config.get("projection_dim") and "WithProjection" in str(config.get("architectures"))
    projection = h * _int(config, "projection_dim") if with_projection else 0
    return (vocab + positions) * h + layers * block + 2 * h + projection


def _vae(config: dict) -> int:
    """diffusers' AutoencoderKL: an encoder and a decoder of resnets with a single attention block in the middle, and
    the 1x1 convolutions around the latent."""
    channels = [_int({"block_out_channels": c}, "block_out_channels") for c in config.get("block_out_channels") or [128, 256, 512, 512]]
    per_block, latent = _int(config, "layers_per_block", default=2), _int(config, "latent_channels", default=4)
    rgb, top = _int(config, "in_channels", default=3), channels[-1]
    middle = 2 * _resnet(top, top) + 2 * top + 4 * (top * top + top)
    encoder = rgb * channels[0] * 9 + channels[0] + middle + 2 * top + top * 2 * latent * 9 + 2 * latent
    c_prev = channels[0]
    for index, c in enumerate(channels):
        encoder += sum(_resnet(c_prev if layer == 0 else c, c) for layer in range(per_block))
        encoder += c * c * 9 + c if index < len(channels) - 1 else 0
        c_prev = c
    decoder = latent * top * 9 + top + middle + 2 * channels[0] + channels[0] * rgb * 9 + rgb
    c_prev = top
    for index, c in enumerate(channels[::-1]):
        decoder += sum(_resnet(c_prev if layer == 0 else c, c) for layer in range(per_block + 1))
        decoder += c * c * 9 + c if index < len(channels) - 1 else 0
        c_prev = c
    return encoder + decoder + (2 * latent) ** 2 + 2 * latent + latent * latent + latent  # quant_conv, post_quant_conv


def read_config(path: Path) -> dict:
    """A config.json as a dict, or one line saying why not."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable config.json ({exc.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected a JSON object")
    return value


def diffusion_pipeline(folder: Path, name: str) -> Architecture:
    """A diffusers pipeline folder (model_index.json): its UNet, with its text encoders and VAE as companions."""
    def config(part: str) -> dict | None:
        path = folder / part / "config.json"
        return read_config(path) if path.is_file() else None

    unet = config("unet")
    if unet is None:
        raise InputError(f"{folder}: a diffusers pipeline without unet/config.json: adaptkit sizes UNet pipelines "
                         "(Stable Diffusion 1.x/2.x, SDXL)")
    arch = from_config({**unet, "model_type": "unet"}, name)  # the same checks as any config (sizes, a plausible total)
    companions = sum(_clip_text(c) for c in (config("text_encoder"), config("text_encoder_2")) if c)
    vae = config("vae")
    return replace(arch, companion_params=companions + (_vae(vae) if vae else 0))


DYNAMIC_PIXELS = (56 * 56, 28 * 28 * 1280)  # Qwen2-VL: transformers' processor defaults for min_pixels and max_pixels
DEFAULT_IMAGE_SIDE = 448  # a dynamic-resolution model's image when none is named: 448 x 448 (256 tokens at 28 px a token)


def image_tokens_of_size(arch: Architecture, size: tuple[int, int], image_tokens: int | None = None) -> int:
    """The image tokens for one image of `size` (width, height), as `estimate --image-size` and `adaptkit.estimate(...,
    image_size=...)` take it: one line where the model takes no images or the tokens are given twice."""
    if image_tokens is not None:
        raise InputError("--image-size and --image-tokens both give the image tokens: pass one")
    if not arch.image_tokens:
        raise InputError(f"--image-size: {arch.name} takes no images (a vision-language model does)")
    return image_tokens_for(arch, *size)


def image_tokens_for(arch: Architecture, width: int, height: int) -> int:
    """The language model's tokens for one image of width x height pixels: a fixed count for LLaVA or Qwen-VL (their
    processors resize every image), else Qwen2-VL's rule: each side rounded to a multiple of patch x merge (28 px),
    the area kept within the processor's min_pixels and max_pixels, one token per 28 x 28 pixels."""
    import math

    if not arch.token_pixels:
        return arch.image_tokens or 0
    if max(width, height) / min(width, height) > 200:
        raise InputError(f"--image-size {width}x{height}: an aspect ratio over 200, which Qwen2-VL's processor refuses")
    step = arch.token_pixels
    h, w = max(step, round(height / step) * step), max(step, round(width / step) * step)
    low, high = DYNAMIC_PIXELS
    if h * w > high:
        scale = math.sqrt(height * width / high)
        h, w = max(step, math.floor(height / scale / step) * step), max(step, math.floor(width / scale / step) * step)
    elif h * w < low:
        scale = math.sqrt(low / (height * width))
        h, w = math.ceil(height * scale / step) * step, math.ceil(width * scale / step) * step
    return (h // step) * (w // step)


def _qwen2_vl(config: dict, family: str, name: str) -> Architecture:
    """Qwen2-VL: a Qwen2 language model (its fields in text_config, or at the top level in older configs) and a ViT with
    3-D patches (two frames of 14 x 14) whose 2 x 2 neighbours a merger MLP folds into one token of the language model's
    width: an image's token count follows its size (dynamic resolution), one token per 28 x 28 pixels."""
    text = dict(config.get("text_config") or config)
    text["model_type"] = "qwen2"
    language = _decoder(text, "qwen2", name)
    vision = dict(config.get("vision_config") or {})
    width, depth = _int(vision, "embed_dim", default=1280), _int(vision, "depth", default=32)
    patch, merge = _int(vision, "patch_size", default=14), _int(vision, "spatial_merge_size", default=2)
    frames, channels = _int(vision, "temporal_patch_size", default=2), _int(vision, "in_channels", "in_chans", default=3)
    mlp = width * _int(vision, "mlp_ratio", default=4)
    out = _int(vision, "hidden_size", default=language.hidden)
    block = _vit_block(width, mlp)  # qkv fused, proj, fc1 and fc2
    merged = width * merge * merge
    merger = 2 * width + (merged * merged + merged) + (merged * out + out)
    extra = channels * frames * patch * patch * width + depth * block + merger
    step = patch * merge
    return replace(language, family=family, other_params=language.other_params + extra, vision_params=extra, token_pixels=step,
                   image_tokens=(DEFAULT_IMAGE_SIDE // step) ** 2,
                   notes=(f"Qwen2-VL: dynamic resolution, one image token per {step} x {step} pixels "
                          f"(--image-size WxH; {DEFAULT_IMAGE_SIDE} x {DEFAULT_IMAGE_SIDE} when none is given)",))


def _t5(config: dict, family: str, name: str) -> Architecture:
    """T5 / mT5 / Flan-T5: encoder-decoder, relative attention bias, ReLU or gated-GELU MLP."""
    h, ff, d = _int(config, "d_model"), _int(config, "d_ff"), _int(config, "d_kv")
    heads, enc = _int(config, "num_heads"), _int(config, "num_layers")
    dec = _int(config, "num_decoder_layers", default=enc)
    vocab = _int(config, "vocab_size")
    gated = str(config.get("feed_forward_proj", "relu")).startswith("gated")
    inner = heads * d
    buckets = _int(config, "relative_attention_num_buckets", default=32)
    attn = lambda prefix: (  # noqa: E731
        Linear(f"{prefix}q", "q", h, inner), Linear(f"{prefix}k", "k", h, inner),
        Linear(f"{prefix}v", "v", h, inner), Linear(f"{prefix}o", "o", inner, h),
    )
    mlp = (Linear("wi_0", "gate", h, ff), Linear("wi_1", "up", h, ff)) if gated else (Linear("wi", "up", h, ff),)
    mlp = mlp + (Linear("wo", "down", ff, h),)
    encoder = Block(enc, attn("") + mlp, 2 * h, extra_params=buckets * heads)
    decoder = Block(dec, attn("") + attn("EncDecAttention.") + mlp, 3 * h, extra_params=buckets * heads)
    tied = bool(config.get("tie_word_embeddings", family == "t5"))
    return Architecture(
        name, family, vocab, h, enc + dec, heads, heads, d, ff, gated, tied, (encoder, decoder),
        embedding_params=vocab * h, head_params=0 if tied else vocab * h, other_params=2 * h,
        kind="encoder-decoder", dropout=True, attention="eager",
    )


FAMILIES = {
    "llama": _decoder, "mistral": _decoder, "qwen2": _decoder, "qwen3": _decoder, "gemma": _decoder,
    "gemma2": _decoder, "phi3": _decoder,
    "mixtral": _moe, "qwen2_moe": _moe, "qwen3_moe": _moe, "deepseek_v2": _deepseek, "deepseek_v3": _deepseek,
    "phi": lambda c, f, n: _phi(c, n),
    "gpt2": _gpt2, "gpt_bigcode": _gpt2,
    "gpt_neox": _neox, "bloom": _neox,
    "bert": _bert, "roberta": _bert, "xlm-roberta": _bert, "electra": _bert, "camembert": _bert,
    "t5": _t5, "mt5": _t5,
    "vit": _vit, "deit": _vit, "whisper": _whisper, "llava": _llava, "qwen": _qwen, "qwen2_vl": _qwen2_vl, "unet": _unet,
}


def from_config(config: dict, name: str = "model") -> Architecture:
    """Build an Architecture from config.json values; unknown families are a clear error."""
    family = str(config.get("model_type", "")).lower()
    if family not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise InputError(f"{name}: model_type `{one_line(family)[:40] or '?'}` is not one adaptkit can size (known: {known}); pass --params instead")
    arch = FAMILIES[family](config, family, name)
    window = config.get("max_position_embeddings", config.get("n_positions"))
    if window is not None and not arch.input_tokens:
        arch = replace(arch, context_window=_int(config, "max_position_embeddings", "n_positions"))
    if arch.heads > arch.hidden or arch.total_params > MAX_TOTAL_PARAMS:
        raise InputError(f"{name}: config.json describes {arch.total_params:.3g} parameters with {arch.heads} heads over width "
                         f"{arch.hidden}: not a model adaptkit can size (check the file, or pass --params)")
    return arch


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict]:
    """Built-in configs: normalised name or alias -> (name, config, a pipeline's companions)."""
    table = {}
    for name, entry in load_yaml(DATA / "models.yaml").items():
        for key in [name, *entry.get("aliases", [])]:
            found = {"name": name, "config": entry["config"], "companions": entry.get("companions")}
            table[_normalise(key)] = found
            table.setdefault(_normalise(key.rsplit("/", 1)[-1]), found)
    return table


def _normalise(name: str) -> str:
    return name.strip().lower()


def known_models() -> list[str]:
    return sorted(load_yaml(DATA / "models.yaml"))


def load_model(name_or_path: str, online: bool = True) -> Architecture:
    """Resolve a local folder or config.json, a built-in name, or (online) a hub id, to an Architecture."""
    path = Path(name_or_path).expanduser()
    if path.is_dir() and (path / "model_index.json").is_file():
        return diffusion_pipeline(path, str(name_or_path))
    if path.is_dir() or path.is_file():
        config_file = path / "config.json" if path.is_dir() else path
        if not config_file.is_file():
            raise InputError(f"{path}: no config.json in this folder")
        return from_config(read_config(config_file), str(name_or_path))
    entry = catalogue().get(_normalise(name_or_path)) or catalogue().get(_normalise(name_or_path.rsplit("/", 1)[-1]))
    if entry:
        arch = from_config(entry["config"], entry["name"])
        companions = entry.get("companions") or {}
        if companions:  # a diffusion pipeline's text encoders and VAE
            sizes = [_vae(c) if part == "vae" else _clip_text(c) for part, c in companions.items()]
            arch = replace(arch, companion_params=sum(sizes))
        return arch
    config, why = _from_hub(name_or_path) if online else (None, "the hub is not asked here")
    if config is None:
        total, active, _ = sizes_from_name(name_or_path)
        hint = (f" --params {total:g}B" if total else " --params 7B") + (f" --active-params {active:g}B" if total and active else "")
        raise InputError(
            f"model `{name_or_path}` is not built in and {why}: pass a local folder with its config.json, "
            f"or{hint} (see `adaptkit estimate --list-models`)"
        )
    return from_config(config, name_or_path)


def _from_hub(repo_id: str) -> tuple[dict | None, str]:
    """(config.json from the Hugging Face Hub, or None and why not): asked only when online and huggingface_hub is
    installed; the library's own retry warnings stay quiet (the caller's one line says what to do)."""
    import logging

    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return None, "the hub is offline (HF_HUB_OFFLINE)"
    if "/" not in repo_id:
        return None, "is no hub id (owner/name)"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None, "huggingface_hub is not installed to ask the hub"
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:
        return json.loads(Path(hf_hub_download(repo_id, "config.json")).read_text(encoding="utf-8")), ""
    except Exception as exc:  # offline, gated, missing: the caller says what to pass instead
        kind = exc.__class__.__name__
        why = {"GatedRepoError": "it is gated on the hub (accept its license and log in: hf auth login)",
               "RepositoryNotFoundError": "the hub has no such model (or it is private: log in)",
               "EntryNotFoundError": "its hub repository has no config.json"}.get(kind, f"the hub cannot be reached ({kind})")
        return None, why
    finally:
        hub_log.setLevel(level)


# Shapes for `--params N` when only the size is known: Llama-style decoders by size.
_SHAPES = [  # (params_b, hidden, layers, heads, kv_heads, intermediate, vocab)
    (0.5, 1024, 24, 16, 16, 2816, 32000),
    (1.0, 2048, 16, 32, 8, 8192, 32000),
    (3.0, 3072, 28, 24, 8, 8192, 32000),
    (7.0, 4096, 32, 32, 8, 14336, 32000),
    (13.0, 5120, 40, 40, 8, 13824, 32000),
    (34.0, 8192, 48, 64, 8, 22016, 32000),
    (70.0, 8192, 80, 64, 8, 28672, 32000),
    (180.0, 14848, 80, 232, 8, 59392, 32000),
    (405.0, 16384, 126, 128, 8, 53248, 32000),
]


def from_params(params_b: float, active_b: float | None = None) -> Architecture:
    """A Llama-style architecture of about `params_b` billion parameters (layers scaled to match).

    With `active_b` below it, a Mixtral-style mixture of experts: the dense shape of the active size, its MLP split into
    two experts per token, and as many experts as make up the total."""
    if params_b <= 0 or (active_b is not None and active_b <= 0):
        raise InputError("--params must be a positive size like 7B or 770M")
    if active_b is not None and active_b > params_b:
        raise InputError(f"--active-params {active_b:g}B is more than the model's {params_b:g}B parameters")
    moe = active_b is not None and active_b < params_b * 0.95
    target = active_b if moe else params_b
    shape = min(_SHAPES, key=lambda s: abs(s[0] - target) / s[0])
    _, h, layers, heads, kv, i, vocab = shape
    base = from_config({"model_type": "llama", "hidden_size": h, "num_hidden_layers": 1, "num_attention_heads": heads,
                        "num_key_value_heads": kv, "intermediate_size": i, "vocab_size": vocab}, "x")
    per_layer = base.blocks[0].params
    fixed = base.total_params - per_layer
    layers = max(1, round((target * 1e9 - fixed) / per_layer))
    config = {"model_type": "llama", "hidden_size": h, "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": kv, "intermediate_size": i, "vocab_size": vocab}
    if not moe:
        arch = from_config(config, f"{params_b:g}B (Llama-style)")
        note = (f"only the size was given: assumed a Llama-style decoder with hidden {h}, {layers} layers, "
                f"{heads} heads ({kv} KV), MLP {i}, vocab {vocab}")
        return replace(arch, notes=(note,))
    expert_mlp = layers * 3 * h * (i // 2)  # one expert's MLP weights over all layers
    experts = max(2, round(2 + (params_b - active_b) * 1e9 / expert_mlp))
    arch = from_config({**config, "model_type": "mixtral", "intermediate_size": i // 2, "num_local_experts": experts,
                        "num_experts_per_tok": 2}, f"{params_b:g}B with {active_b:g}B active (Mixtral-style)")
    note = (f"only the sizes were given: assumed a Mixtral-style mixture of experts with hidden {h}, {layers} layers, "
            f"{experts} experts of width {i // 2} (2 per token), vocab {vocab}: {arch.total_params / 1e9:.1f}B in all, "
            f"{arch.active_params / 1e9:.1f}B active")
    return replace(arch, notes=(note,))


# Sizes in model names: `Qwen2.5-7B`, `Mixtral-8x7B` (8 experts of a 7B model), `Qwen3-30B-A3B` (3B active).
_SIZE = re.compile(r"(?<![0-9.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)
_EXPERTS = re.compile(r"(?<![0-9.])(\d+)\s*x\s*(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)
_ACTIVE = re.compile(r"(?<![a-z0-9])a(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)
MLP_SHARE = 0.78  # share of a Llama/Mistral-style model's parameters in its MLPs (Mistral-7B: 5.6B of 7.2B)


def sizes_from_name(name: str) -> tuple[float | None, float | None, str]:
    """(total, active or None, how) in billions, read from a model name; (None, None, "") when it gives no size.

    `NxM`: N experts cloned from an M model, the attention shared, two experts per token (Mixtral-style)."""
    tail = name.rsplit("/", 1)[-1]
    scale = lambda number, unit: float(number) / (1000 if unit.lower() == "m" else 1)  # noqa: E731
    experts = _EXPERTS.search(tail)
    if experts:
        count, each = int(experts.group(1)), scale(experts.group(2), experts.group(3))
        if count >= 2:
            total = each * (1 + (count - 1) * MLP_SHARE)
            active = each * (1 + min(1, count - 1) * MLP_SHARE)
            return (round(total, 1), round(active, 1),
                    f"`{experts.group(0)}` read as {count} experts of a {each:g}B model sharing its attention, 2 per token "
                    f"(~{MLP_SHARE:.0%} of a dense model is MLP): about {total:.1f}B in all, {active:.1f}B active")
    active_match = _ACTIVE.search(tail)
    sizes = [scale(n, u) for n, u in _SIZE.findall(_ACTIVE.sub(" ", tail))]
    if active_match:
        active = scale(active_match.group(1), active_match.group(2))
        total = sizes[-1] if sizes else None
        if total is not None and total > active:
            return total, active, f"{total:g}B in all, {active:g}B active (`-A{active_match.group(1)}{active_match.group(2)}`)"
        return None, active, f"{active:g}B active per token (`A{active_match.group(1)}{active_match.group(2)}`); the total is not in the name"
    if sizes:
        return sizes[-1], None, f"{sizes[-1]:g}B"
    return None, None, ""


def for_model(model: str | None, params_b: float | None, active_b: float | None = None) -> Architecture | None:
    """A model to size: a built-in or local config when it names one, else a Llama-style model of the given size."""
    if model:
        try:
            return load_model(model, online=False)
        except InputError:
            pass
    return from_params(params_b, active_b) if params_b else None
