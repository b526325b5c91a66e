"""Training compute, time and cost: FLOPs per token by method, over a GPU's peak at a stated MFU range."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from adaptkit._yaml import load_yaml
from adaptkit.errors import InputError
from adaptkit.estimator.architectures import Architecture
from adaptkit.estimator.memory import Setup

MFU_RANGE = (0.35, 0.15)  # single-node HF-Trainer fine-tuning: 15-35% of peak (memory-model.md section 6)
RLHF_MFU_RANGE = (0.20, 0.08)  # generation is bandwidth-bound: RL pipelines reach less
QLORA_SLOWDOWN = (1.3, 1.6)  # dequantization overhead over LoRA (1.0-2.5x published)


@dataclass(frozen=True)
class GPUType:
    name: str
    memory_gb: float
    bf16_tflops: float
    bandwidth_tbs: float
    hour_usd: float
    skypilot: str | None = None  # the name SkyPilot's catalogue gives it


@lru_cache(maxsize=1)
def gpu_table() -> dict[str, GPUType]:
    rows = load_yaml(Path(__file__).parent / "data" / "gpus.yaml")
    return {name: GPUType(name, row["memory_gb"], row["bf16_tflops"], row["bandwidth_tbs"], row["hour_usd"], row.get("skypilot"))
            for name, row in rows.items()}


@lru_cache(maxsize=1)
def _matchers() -> list[tuple[str, str]]:
    rows = load_yaml(Path(__file__).parent / "data" / "gpus.yaml")
    return [(str(pattern).lower(), name) for name, row in rows.items() for pattern in row["match"]]


def find_gpu(name: str, strict: bool = True) -> GPUType | None:
    """Look up a GPU by table name (`A100-80GB`), a short name (`4090`) or a detected name."""
    table = gpu_table()
    key = name.strip().lower()
    for table_name, gpu in table.items():
        if table_name.lower() == key:
            return gpu
    for pattern, table_name in _matchers():
        if pattern in f" {key}":
            return table[table_name]
    if not strict:
        return None
    close = difflib.get_close_matches(name.upper(), list(table), n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise InputError(f"unknown GPU `{name}`{hint}: use one of {', '.join(table)}, or --gpu-memory-gb N")


def flops_per_token(arch: Architecture, setup: Setup) -> float:
    """Training FLOPs per token: 6N full, ~4N for adapters (no weight gradients), +2N with checkpointing.

    N counts the parameters a token passes through: for a mixture of experts, the active ones."""
    s = setup.resolved(arch)
    n = arch.active_params
    full = s.trains_all_weights
    train = (6 if full else 4) * n + (2 * n if s.gradient_checkpointing else 0)
    train += 6 * arch.layers * arch.hidden * s.seq_len  # causal attention scores and mixing
    if s.objective == "preference" and s.dpo_reference not in ("precomputed", "none"):
        train += 2 * n  # the reference model's forward pass
    if s.objective == "rl":
        reward = n if s.reward_params is None else s.reward_params
        train += 2 * n + 2 * reward + 2 * n  # generation, reward scoring, reference log-probs
        if s.rl_algorithm == "ppo":
            train += (6 if full else 4) * n  # the value model
    return float(train)


@dataclass
class TimeEstimate:
    train_flops: float | None
    hours: dict | None  # {"low": h, "high": h}
    cost_usd: dict | None
    assumptions: list[str]


def estimate_time(arch: Architecture, setup: Setup, tokens: float | None, gpu: GPUType | None,
                  gpu_hour_usd: float | None, tokens_per_second: float | None = None) -> TimeEstimate:
    """Hours and dollars as a range over the MFU range; None where tokens or the GPU type are unknown. A measured
    `tokens_per_second` (all processes together) replaces the MFU range: one figure."""
    s = setup.resolved()
    if not s.trains:
        return TimeEstimate(0.0, {"low": 0.0, "high": 0.0}, {"low": 0.0, "high": 0.0},
                            [f"no training: inference costs ~{2 * arch.active_params / 1e9:.1f} GFLOPs per token"])
    notes: list[str] = []
    if tokens is None:
        return TimeEstimate(None, None, None, ["pass --tokens N (training tokens, all epochs) for compute, time and cost"])
    flops = flops_per_token(arch, s) * tokens
    notes.append(f"{flops_per_token(arch, s) / arch.active_params:.1f} x N FLOPs per token (6N full, ~4N adapters, +2N checkpointing)"
                 + (f", N = {arch.active_params / 1e9:.1f}B active of {arch.total_params / 1e9:.1f}B" if arch.is_moe else ""))
    if tokens_per_second:
        hours = tokens / tokens_per_second / 3600
        price = gpu_hour_usd if gpu_hour_usd is not None else (gpu.hour_usd if gpu else None)
        notes.append(f"time from the measured {tokens_per_second:,.0f} tokens/s (not the MFU range)"
                     + (f"; ${price:g}/GPU-hour x {s.num_gpus}" if price is not None else "; pass --gpu or --gpu-hour-usd for cost"))
        cost = None if price is None else {k: round(hours * s.num_gpus * price, 2) for k in ("low", "high")}
        return TimeEstimate(flops, {"low": round(hours, 3), "high": round(hours, 3)}, cost, notes)
    if gpu is None:
        notes.append("time needs a GPU type: pass --gpu NAME")
        return TimeEstimate(flops, None, None, notes)
    best, worst = RLHF_MFU_RANGE if s.objective == "rl" else MFU_RANGE
    slow = QLORA_SLOWDOWN if s.quantization != "none" else (1.0, 1.0)
    rate = gpu.bf16_tflops * 1e12 * s.num_gpus
    hours = {"low": flops / (rate * best) / 3600 * slow[0], "high": flops / (rate * worst) / 3600 * slow[1]}
    price = gpu_hour_usd if gpu_hour_usd is not None else gpu.hour_usd
    cost = {k: v * s.num_gpus * price for k, v in hours.items()}
    notes.append(f"{s.num_gpus} x {gpu.name} at {gpu.bf16_tflops:g} TFLOP/s bf16 peak, MFU {worst:.0%}-{best:.0%}"
                 + (f", x{slow[0]}-{slow[1]} for 4/8-bit dequantization" if s.quantization != "none" else "")
                 + f", ${price:g}/GPU-hour" + ("" if gpu_hour_usd is not None else " (indicative; pass --gpu-hour-usd)"))
    return TimeEstimate(flops, {k: round(v, 3) for k, v in hours.items()}, {k: round(v, 2) for k, v in cost.items()}, notes)



OUTPUT_PRICE_RATIO = 4  # API output tokens cost 4-5x input tokens (OpenAI, Anthropic, Google list prices)


@dataclass
class RequestCost:
    prompt_tokens: int
    output_tokens: int
    requests_per_day: float | None
    cost_per_request_usd: float | None
    cost_per_day_usd: float | None
    seconds_per_request: float | None
    assumptions: list[str]

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def prompt_tokens(base: int, query: int, shots: int = 0, per_example: int = 60, chunks: int = 0,
                  per_chunk: int = 150, tool_tokens: int = 0, steps: int = 1) -> tuple[int, str]:
    """Tokens a request sends: the prompt grows with demonstrations, retrieved chunks, or tool schemas and turns."""
    parts = [f"{base} prompt", f"{query} input"]
    if shots:
        parts.append(f"{shots} demonstrations x {per_example}")
    if chunks:
        parts.append(f"{chunks} chunks x {per_chunk}")
    if tool_tokens:
        parts.append(f"{tool_tokens} tool schemas and results")
    one = base + query + shots * per_example + chunks * per_chunk + tool_tokens
    text = " + ".join(parts)
    return steps * one, (f"{steps} model turns x ({text})" if steps > 1 else text)


def request_cost(arch: Architecture | None, prompt: int, output: int, requests_per_day: float | None,
                 usd_per_1m_input: float | None, usd_per_1m_output: float | None, gpu: GPUType | None,
                 gpu_hour_usd: float | None) -> RequestCost:
    """Per-request cost: API token prices when given, else the time one request holds a GPU (batch 1, the upper bound)."""
    notes: list[str] = []
    per_request = seconds = None
    if usd_per_1m_input is not None:
        output_price = usd_per_1m_output if usd_per_1m_output is not None else OUTPUT_PRICE_RATIO * usd_per_1m_input
        per_request = prompt * usd_per_1m_input / 1e6 + output * output_price / 1e6
        notes.append(f"API prices: ${usd_per_1m_input:g} per 1M input tokens, ${output_price:g} per 1M output"
                     + ("" if usd_per_1m_output is not None else f" (assumed {OUTPUT_PRICE_RATIO}x input, as APIs charge: pass --usd-per-1m-output)"))
    elif gpu is not None and arch is not None:
        prefill = 2 * arch.active_params * prompt / (gpu.bf16_tflops * 1e12 * MFU_RANGE[1])
        decode = output * 2 * arch.active_params / (gpu.bandwidth_tbs * 1e12 * 0.6)  # each token reads every weight it uses once
        seconds = prefill + decode
        price = gpu_hour_usd if gpu_hour_usd is not None else gpu.hour_usd
        per_request = seconds * price / 3600
        notes.append(f"self-served on one {gpu.name} at batch 1 (prefill at {MFU_RANGE[1]:.0%} MFU, decode at 60% of "
                     f"{gpu.bandwidth_tbs:g} TB/s): an upper bound; batching divides it")
    else:
        notes.append("no price: pass --usd-per-1m-input (API) or --gpu (self-served) for a cost per request")
    per_day = per_request * requests_per_day if per_request is not None and requests_per_day else None
    return RequestCost(prompt, output, requests_per_day, per_request, per_day, seconds, notes)
