"""Model architectures from a Hugging Face config.json, and parameter counts from the config alone."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
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

    @property
    def params(self) -> int:
        return self.d_in * self.d_out + (self.d_out if self.bias else 0)


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

    @property
    def total_params(self) -> int:
        return self.embedding_params + self.head_params + self.other_params + sum(b.count * b.params + b.extra_params for b in self.blocks)

    @property
    def linear_params(self) -> int:
        """Parameters in the blocks' linear layers: what 4/8-bit quantization compresses."""
        return sum(b.count * sum(lin.d_in * lin.d_out for lin in b.linears) for b in self.blocks)

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
    "phi": lambda c, f, n: _phi(c, n),
    "gpt2": _gpt2, "gpt_bigcode": _gpt2,
    "gpt_neox": _neox, "bloom": _neox,
    "bert": _bert, "roberta": _bert, "xlm-roberta": _bert, "electra": _bert, "camembert": _bert,
    "t5": _t5, "mt5": _t5,
}


def from_config(config: dict, name: str = "model") -> Architecture:
    """Build an Architecture from config.json values; unknown families are a clear error."""
    family = str(config.get("model_type", "")).lower()
    if family not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise InputError(f"{name}: model_type `{one_line(family)[:40] or '?'}` is not one adaptkit can size (known: {known}); pass --params instead")
    arch = FAMILIES[family](config, family, name)
    if arch.heads > arch.hidden or arch.total_params > MAX_TOTAL_PARAMS:
        raise InputError(f"{name}: config.json describes {arch.total_params:.3g} parameters with {arch.heads} heads over width "
                         f"{arch.hidden}: not a model adaptkit can size (check the file, or pass --params)")
    return arch


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict]:
    """Built-in configs: normalised name or alias -> (name, config)."""
    table = {}
    for name, entry in load_yaml(DATA / "models.yaml").items():
        for key in [name, *entry.get("aliases", [])]:
            table[_normalise(key)] = {"name": name, "config": entry["config"]}
            table.setdefault(_normalise(key.rsplit("/", 1)[-1]), {"name": name, "config": entry["config"]})
    return table


def _normalise(name: str) -> str:
    return name.strip().lower()


def known_models() -> list[str]:
    return sorted(load_yaml(DATA / "models.yaml"))


def load_model(name_or_path: str, online: bool = True) -> Architecture:
    """Resolve a local folder or config.json, a built-in name, or (online) a hub id, to an Architecture."""
    path = Path(name_or_path).expanduser()
    if path.is_dir() or path.is_file():
        config_file = path / "config.json" if path.is_dir() else path
        if not config_file.is_file():
            raise InputError(f"{path}: no config.json in this folder")
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{config_file}: not a readable config.json ({exc.__class__.__name__})") from None
        if not isinstance(config, dict):
            raise InputError(f"{config_file}: expected a JSON object")
        return from_config(config, str(name_or_path))
    entry = catalogue().get(_normalise(name_or_path)) or catalogue().get(_normalise(name_or_path.rsplit("/", 1)[-1]))
    if entry:
        return from_config(entry["config"], entry["name"])
    config = _from_hub(name_or_path) if online else None
    if config is None:
        size = re.search(r"(\d+(?:\.\d+)?)\s*[bB]\b", name_or_path)
        hint = f" --params {size.group(1)}B" if size else " --params 7B"
        raise InputError(
            f"model `{name_or_path}` is not built in and the hub is offline: pass a local folder with its config.json, "
            f"or{hint} (see `adaptkit estimate --list-models`)"
        )
    return from_config(config, name_or_path)


def _from_hub(repo_id: str) -> dict | None:
    """Fetch config.json from the Hugging Face Hub when online and huggingface_hub is installed."""
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True") or "/" not in repo_id:
        return None
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None
    try:
        return json.loads(Path(hf_hub_download(repo_id, "config.json")).read_text(encoding="utf-8"))
    except Exception:  # offline, gated, missing: the caller says what to pass instead
        return None


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


def from_params(params_b: float) -> Architecture:
    """A Llama-style architecture of about `params_b` billion parameters (layers scaled to match)."""
    if params_b <= 0:
        raise InputError("--params must be a positive size like 7B or 770M")
    shape = min(_SHAPES, key=lambda s: abs(s[0] - params_b) / s[0])
    _, h, layers, heads, kv, i, vocab = shape
    base = from_config({"model_type": "llama", "hidden_size": h, "num_hidden_layers": 1, "num_attention_heads": heads,
                        "num_key_value_heads": kv, "intermediate_size": i, "vocab_size": vocab}, "x")
    per_layer = base.blocks[0].params
    fixed = base.total_params - per_layer
    layers = max(1, round((params_b * 1e9 - fixed) / per_layer))
    config = {"model_type": "llama", "hidden_size": h, "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": kv, "intermediate_size": i, "vocab_size": vocab}
    arch = from_config(config, f"{params_b:g}B (Llama-style)")
    note = (f"only the size was given: assumed a Llama-style decoder with hidden {h}, {layers} layers, "
            f"{heads} heads ({kv} KV), MLP {i}, vocab {vocab}")
    return Architecture(**{**arch.__dict__, "notes": (note,)})


def for_model(model: str | None, params_b: float | None) -> Architecture | None:
    """A model to size: a built-in or local config when it names one, else a Llama-style model of the given size."""
    if model:
        try:
            return load_model(model, online=False)
        except InputError:
            pass
    return from_params(params_b) if params_b else None
