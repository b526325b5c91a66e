"""`adaptkit serve` against calling the same loaded model directly, in one run.

    python benchmarks/serve.py [--requests 40] [--max-tokens 16]

Builds a small random causal LM (Llama-style, 6 layers of width 384: about MiniLM's size) with the embedded
tokenizer, trains a LoRA adapter on it for two steps with `adaptkit run` (a real run folder), loads it once, and
times the same greedy completions (a fixed prompt, --max-tokens new tokens) three ways: direct calls to the loaded
model in this process, the HTTP server at concurrency 1, and at concurrency 8 (8 client threads). Prints requests
per second and p50 / p95 latency; exits 1 if the server at concurrency 1 keeps less than 0.8 of the direct rate.
Generation is serialised on the model, so concurrency 8 queues requests: its rate shows the server's overhead under
load, its latency the queueing.

Then an abuse run on the same server (--max-concurrency 4): chunked bodies past the size limit, 40 streams 0.1 s
apart, and a storm of clients that leave after their first token, while one client keeps making normal requests;
prints what each abuse got back and the normal request's latency during it against the quiet p50.
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


def abuse_run(served, create_app, body: dict) -> dict:
    """The abuses of issue 25 against a fresh server on the loaded model, while one client makes normal requests."""
    import httpx
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(served, max_concurrency=4, max_request_kb=256), host="127.0.0.1", port=port,
                                           log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/v1"
    done = threading.Event()
    normal: list[float] = []
    refused = [0]

    def steady():
        with httpx.Client(base_url=url, timeout=120) as client:
            while not done.is_set():
                started = time.perf_counter()
                while (answer := client.post("/completions", json=body)).status_code == 429:
                    refused[0] += 1
                    time.sleep(0.05)
                answer.raise_for_status()
                normal.append(time.perf_counter() - started)

    def oversize() -> str:
        def chunks():
            for _ in range(1024):  # 64 MB, no Content-Length
                yield b"x" * 65536
        codes = [httpx.post(f"{url}/completions", content=chunks(), headers={"content-type": "application/json"}, timeout=60).status_code
                 for _ in range(3)]
        return f"3 chunked 64 MB bodies: {codes}"

    def streams() -> str:
        codes: list[int] = []

        def one():
            with httpx.stream("POST", f"{url}/completions", json={**body, "stream": True, "max_tokens": 32}, timeout=120) as reply:
                codes.append(reply.status_code)
                for _ in reply.iter_bytes():
                    pass
        workers = []
        for _ in range(40):
            workers.append(threading.Thread(target=one))
            workers[-1].start()
            time.sleep(0.1)
        for worker in workers:
            worker.join()
        return f"40 streams 0.1 s apart: {codes.count(200)} served, {codes.count(429)} told 429"

    def storm() -> str:
        for _ in range(20):
            with httpx.stream("POST", f"{url}/completions", json={**body, "stream": True, "max_tokens": 256}, timeout=120) as reply:
                pieces = reply.iter_bytes()
                next(pieces, None)  # one token, then gone
        return "20 clients that left after their first token"

    keeper = threading.Thread(target=steady)
    keeper.start()
    said = {"oversize": oversize(), "streams": streams(), "storm": storm()}
    done.set()
    keeper.join()
    server.should_exit = True
    thread.join(timeout=10)
    return {**said, "normal": len(normal), "refused": refused[0], "p50": percentile(normal, 0.5), "p95": percentile(normal, 0.95),
            "worst": max(normal)}


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
        abuse = abuse_run(served, create_app, body)
        server.should_exit = True
        thread.join(timeout=10)
    print(f"{args.requests} completions of {args.max_tokens} tokens each, greedy, small random Llama + LoRA, CPU")
    print("| calls | requests/s | p50 latency | p95 latency |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['rps']:.2f} | {r['p50'] * 1000:.0f} ms | {r['p95'] * 1000:.0f} ms |")
    ratio = results["server, concurrency 1"]["rps"] / results["direct, in process"]["rps"]
    print(f"server at concurrency 1 keeps {ratio:.2f} of the direct rate")
    quiet = results["server, concurrency 1"]["p50"]
    print(f"abuse run (--max-concurrency 4): {abuse['oversize']}; {abuse['streams']}; {abuse['storm']}")
    print(f"a normal request during it: p50 {abuse['p50'] * 1000:.0f} ms, p95 {abuse['p95'] * 1000:.0f} ms, worst "
          f"{abuse['worst'] * 1000:.0f} ms ({abuse['normal']} requests, {abuse['refused']} answered 429 and retried) "
          f"against {quiet * 1000:.0f} ms quiet")
    print(json.dumps({**{k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()}, "abuse": abuse}))
    return 0 if ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
