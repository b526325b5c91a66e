"""`adaptkit serve RUN_DIR...`: an OpenAI-compatible server for finished runs (one base, an adapter per run)."""

from __future__ import annotations

import shutil

import click

from adaptkit.errors import InputError


@click.command("serve")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; anything but loopback is reachable from the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--max-concurrency", type=click.IntRange(min=1), default=4, show_default=True, help="Requests in flight; more get 429.")
@click.option("--max-request-kb", type=click.IntRange(min=1), default=None,
              help="Larger bodies get 413 (default 256; 20,480 for a vision-language run and 25,600 for a speech run, OpenAI's "
                   "limits for an image and for audio).")
@click.option("--max-tokens-limit", type=click.IntRange(min=1), default=2048, show_default=True, help="The most max_tokens a request may ask.")
@click.option("--engine", type=click.Choice(["transformers", "vllm"]), default="transformers", show_default=True,
              help="vllm: start `vllm serve` with --enable-lora and a --lora-modules entry per run (vLLM and a GPU needed).")
@click.option("--trust-remote-code", is_flag=True, help="Load runs whose model ships its own Python code (trust_remote_code).")
@click.option("--api-key", envvar="ADAPTKIT_API_KEY", help="Require `Authorization: Bearer KEY` on every request (or set ADAPTKIT_API_KEY).")
def serve(run_dirs, host, port, max_concurrency, max_request_kb, max_tokens_limit, engine, trust_remote_code, api_key):
    """Serve runs over the OpenAI protocol: /v1/chat/completions, /v1/completions, /v1/models; classifiers on
    /classify (vLLM's shape: {"model", "input"} -> each input's label and class probabilities); speech runs on
    /v1/audio/transcriptions (a WAV file, as OpenAI's).

    One base model loads once; each run's adapter answers under its folder name (and the base under its own), so
    one server holds an adapter per tenant. Point any OpenAI client, or adaptkit's own openai backend, at
    http://HOST:PORT/v1. Examples:

    \b
      adaptkit serve runs/support-lora runs/sales-lora --port 8000
      adaptkit serve runs/lora_cls   # then POST /classify {"model": "lora_cls", "input": ["refund please"]}
    """
    if engine == "vllm":
        _vllm(run_dirs, host, port, trust_remote_code)
        return
    import uvicorn

    from adaptkit.runners.serve import Served, create_app

    served = Served(list(run_dirs), trust_remote_code)
    default_kb = 25_600 if served.speech else 20_480 if served.vision else 256  # OpenAI's limits: 25 MB of audio, 20 MB an image
    app = create_app(served, max_concurrency, max_request_kb or default_kb, max_tokens_limit, api_key or None)
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        click.echo(f"warning: bound to {host}: reachable from the network with no API key: anyone who reaches it can use the "
                   "model (pass --api-key, or set ADAPTKIT_API_KEY)", err=True)
    click.echo(f"serving {', '.join(served.names())} at http://{host}:{port}/v1 (Ctrl-C stops)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _vllm(run_dirs, host: str, port: int, trust_remote_code: bool = False) -> None:
    """Hand the runs to vLLM's own OpenAI server, which batches many adapters on a GPU."""
    import os

    from adaptkit.runners.deploy import vllm_command, vllm_runs

    exe = shutil.which("vllm")
    if exe is None:
        raise InputError("--engine vllm needs vLLM (pip install vllm) on a machine with a GPU; the default engine serves here")
    command = [exe, *vllm_command(vllm_runs(run_dirs, trust_remote_code), host, port)[1:]]
    click.echo("starting vLLM: " + " ".join(command), err=True)
    os.execv(exe, command)
