"""`adaptkit serve` against calling the same loaded model directly, in one run.

    python benchmarks/serve.py [--requests 40] [--max-tokens 16]

Builds a small random causal LM (Llama-style, 6 layers of width 384: about MiniLM's size) with the embedded
tokenizer, trains a LoRA adapter on it for two steps with `adaptkit run` (a real run folder), loads it once, and
times the same greedy completions (a fixed prompt, --max-tokens new tokens) three ways: direct calls to the loaded
model in this process, the HTTP server at concurrency 1, and at concurrency 8 (8 client threads). Prints requests
per second and p50 / p95 latency; exits 1 if the server at concurrency 1 keeps less than 0.8 of the direct rate.
Generation is serialised on the model, so concurrency 8 queues requests: its rate shows the server's overhead under
load, its latency the queueing.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def small_model(folder: Path) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_truth import _tokenizer

    tokenizer = _tokenizer()
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=1024,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()

    import httpx
    import uvicorn
    import adaptkit
    from adaptkit.runners.serve import Served, create_app

    prompt = "Route this support ticket to one queue. Ticket: I was charged twice for one order and want a refund."
    with tempfile.TemporaryDirectory() as scratch:
        base = small_model(Path(scratch) / "base")
        run = Path(scratch) / "tickets"
        adaptkit.run("lora_sft", [f"model={base}", f"output_dir={run}", "training.max_steps=2", "training.batch_size=2",
                                  "data.max_rows=8", "training.max_length=64"])
        served = Served([str(run)])
        served.generate("tickets", prompt, False, args.max_tokens, 0.0, 1.0)  # warm-up

        def direct() -> float:
            started = time.perf_counter()
            served.generate("tickets", prompt, False, args.max_tokens, 0.0, 1.0)
            return time.perf_counter() - started

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(served, max_concurrency=16), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", timeout=120)
        body = {"model": "tickets", "prompt": prompt, "max_tokens": args.max_tokens, "temperature": 0}

        def over_http() -> float:
            started = time.perf_counter()
            response = client.post("/completions", json=body)
            response.raise_for_status()
            return time.perf_counter() - started

        over_http()  # warm-up
        results = {}
        for name, call, workers in (("direct, in process", direct, 1), ("server, concurrency 1", over_http, 1),
                                    ("server, concurrency 8", over_http, 8)):
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                latencies = list(pool.map(lambda _: call(), range(args.requests)))
            elapsed = time.perf_counter() - started
            results[name] = {"rps": args.requests / elapsed, "p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95)}
        server.should_exit = True
        thread.join(timeout=10)
    print(f"{args.requests} completions of {args.max_tokens} tokens each, greedy, small random Llama + LoRA, CPU")
    print("| calls | requests/s | p50 latency | p95 latency |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['rps']:.2f} | {r['p50'] * 1000:.0f} ms | {r['p95'] * 1000:.0f} ms |")
    ratio = results["server, concurrency 1"]["rps"] / results["direct, in process"]["rps"]
    print(f"server at concurrency 1 keeps {ratio:.2f} of the direct rate")
    print(json.dumps({k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()}))
    return 0 if ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
