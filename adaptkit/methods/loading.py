"""How a trained method loads its model: one spec from the recipe and one function that turns it into
from_pretrained's arguments. The training core calls `load_kwargs`; `adaptkit export` writes its source into the
script, so the run and the exported script load the same way (dtype, 4/8-bit base, device map, remote code).

Torch-free at import: `load_kwargs` imports torch and transformers only when it is called.
"""

from __future__ import annotations

import inspect


def load_spec(recipe) -> dict:
    """The loading settings of a recipe as plain values (what `export` writes as LOAD): trust_remote_code, a weight
    dtype name (pure bf16 training), and BitsAndBytesConfig's fields for a quantized base (QLoRA)."""
    quantization = None
    if recipe.quantization == "4bit":
        quantization = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
                        "bnb_4bit_compute_dtype": "bfloat16"}
    elif recipe.quantization == "8bit":
        quantization = {"load_in_8bit": True}
    return {"trust_remote_code": bool(recipe.trust_remote_code),
            "dtype": "bfloat16" if recipe.training.precision == "bf16" else None,
            "quantization": quantization}


def load_kwargs(spec):
    """from_pretrained's loading arguments for a LOAD spec: the weights' dtype, and for a quantized base (QLoRA) the
    BitsAndBytesConfig and a device map that puts each process's copy on its own GPU."""
    import os

    import torch

    kwargs = {"trust_remote_code": spec["trust_remote_code"]}
    if spec["dtype"]:
        kwargs["dtype"] = getattr(torch, spec["dtype"])
    if spec["quantization"]:
        from transformers import BitsAndBytesConfig

        fields = dict(spec["quantization"])
        if "bnb_4bit_compute_dtype" in fields:
            fields["bnb_4bit_compute_dtype"] = getattr(torch, fields["bnb_4bit_compute_dtype"])
        kwargs["quantization_config"] = BitsAndBytesConfig(**fields)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return kwargs


def load_code() -> str:
    """The source of `load_kwargs`, for the exported script (it defines LOAD beside it)."""
    return inspect.getsource(load_kwargs)
