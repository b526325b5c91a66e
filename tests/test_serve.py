"""adaptkit serve: two adapters on one tiny base over the OpenAI protocol on 127.0.0.1, through the official client."""

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptkit.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _train(folder, model, rate):
    result = CliRunner().invoke(cli, ["run", "lora_sft", f"model={model}", f"output_dir={folder}", "training.max_steps=6",
                                      "training.batch_size=4", "training.max_length=96", "data.max_rows=32",
                                      f"training.learning_rate={rate}"])
    assert result.exit_code == 0, result.output


@contextlib.contextmanager
def running(app):
    """The app on a free port of 127.0.0.1 in a thread, stopped afterwards; yields the port."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not instance.started and time.time() < deadline:
            time.sleep(0.05)
        yield port
    finally:
        instance.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_causal_lm):
    pytest.importorskip("fastapi")
    from adaptkit.runners.serve import Served, create_app

    runs = tmp_path_factory.mktemp("served")
    _train(runs / "support", tiny_causal_lm, 0.01)
    _train(runs / "sales", tiny_causal_lm, 0.05)
    served = Served([str(runs / "support"), str(runs / "sales")])
    with running(create_app(served, max_concurrency=2, max_request_kb=4, max_tokens_limit=64)) as port:
        yield {"url": f"http://127.0.0.1:{port}/v1", "runs": runs, "base": served.base_name}


def test_each_adapter_answers_as_its_run_predicts(server, tmp_path):
    from openai import OpenAI

    client = OpenAI(base_url=server["url"], api_key="unused", max_retries=0)
    names = {m.id for m in client.models.list().data}
    assert {"support", "sales", server["base"]} <= names
    prompt = json.loads((ROOT / "examples/data/instructions_eval.jsonl").read_text().splitlines()[0])["prompt"]
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": prompt}) + "\n")
    for name in ("support", "sales"):
        served = client.completions.create(model=name, prompt=prompt, max_tokens=8, temperature=0)
        predicted = CliRunner().invoke(cli, ["predict", str(server["runs"] / name), str(rows), "--max-new-tokens", "8"])
        assert predicted.exit_code == 0, predicted.output
        assert served.choices[0].text.strip() == json.loads(predicted.stdout)["prediction"]  # the right adapter was active
        assert served.usage.completion_tokens <= 8
    chat = client.chat.completions.create(model="support", messages=[{"role": "user", "content": "Where is my parcel?"}],
                                          max_tokens=6, temperature=0)
    assert chat.choices[0].message.role == "assistant" and isinstance(chat.choices[0].message.content, str)
    streamed = client.chat.completions.create(model="support", messages=[{"role": "user", "content": "Where is my parcel?"}],
                                              max_tokens=6, temperature=0, stream=True)
    chunks = list(streamed)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces).strip() == chat.choices[0].message.content.strip()
    assert chunks[-1].choices[0].finish_reason == chat.choices[0].finish_reason  # "length" at max_tokens, as unstreamed
    plain = client.completions.create(model="support", prompt=prompt, max_tokens=8, temperature=0)
    counted = list(client.completions.create(model="support", prompt=prompt, max_tokens=8, temperature=0, stream=True,
                                             stream_options={"include_usage": True}))
    assert counted[-1].usage.completion_tokens == plain.usage.completion_tokens and not counted[-1].choices
    assert counted[-2].choices[0].finish_reason == plain.choices[0].finish_reason


def test_bad_requests_are_clear_4xx(server):
    import httpx

    url = server["url"]
    unknown = httpx.post(f"{url}/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
    assert unknown.status_code == 404 and "support" in unknown.json()["error"]["message"]
    empty = httpx.post(f"{url}/chat/completions", json={"model": "support", "messages": []})
    assert empty.status_code == 400 and empty.json()["error"]["type"] == "invalid_request_error"
    greedy = httpx.post(f"{url}/completions", json={"model": "support", "prompt": "hi", "max_tokens": 10_000})
    assert greedy.status_code == 400 and "max_tokens" in greedy.json()["error"]["message"]
    huge = httpx.post(f"{url}/completions", json={"model": "support", "prompt": "x" * 10_000})
    assert huge.status_code == 413
    assert httpx.post(f"{url}/completions", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400


def test_the_icl_recipe_runs_against_the_server(server, tmp_path):
    out = tmp_path / "icl"
    result = CliRunner().invoke(cli, ["run", "icl", f"output_dir={out}", "backend.kind=openai", f"backend.base_url={server['url']}",
                                      "backend.model=support", "icl.shots=[0,1]", "data.max_rows=60", "backend.max_new_tokens=4",
                                      "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["method"] == "in_context_learning" and metrics["eval"]


def test_serve_refuses_what_it_cannot_serve(tmp_path):
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not a finished adaptkit run" in result.stderr
    vllm = CliRunner().invoke(cli, ["serve", str(tmp_path), "--engine", "vllm"])
    assert vllm.exit_code == 2 and "vLLM" in vllm.stderr


def test_a_classifier_answers_on_classify_as_its_run_predicts(tmp_path):
    """vLLM's /classify shape over plain HTTP: each input's label, its class probabilities, their count."""
    pytest.importorskip("fastapi")
    import httpx

    from adaptkit.runners.serve import Served, create_app

    run = tmp_path / "tickets"
    result = CliRunner().invoke(cli, ["run", "lora_cls", f"output_dir={run}", "training.max_steps=30", "training.batch_size=8",
                                      "data.max_rows=160"])
    assert result.exit_code == 0, result.output
    served = Served([str(run)])
    with running(create_app(served, max_concurrency=2)) as port:
        texts = ["I was charged twice for one order", "the app crashes when I open settings"]
        reply = httpx.post(f"http://127.0.0.1:{port}/classify", json={"model": "tickets", "input": texts}, timeout=60)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["object"] == "list" and body["model"] == "tickets" and body["usage"]["prompt_tokens"] > 0
        import adaptkit

        expected = adaptkit.predict(run, [{"text": t} for t in texts]).rows
        for item, row in zip(body["data"], expected):
            assert item["label"] == row["prediction"] and item["num_classes"] == len(body["labels"])
            assert abs(sum(item["probs"]) - 1) < 1e-4 and body["labels"][item["probs"].index(max(item["probs"]))] == item["label"]
        one = httpx.post(f"http://127.0.0.1:{port}/classify", json={"model": "tickets", "input": texts[0]}, timeout=60).json()
        assert one["data"][0]["label"] == body["data"][0]["label"]
        chat = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                          json={"model": "tickets", "messages": [{"role": "user", "content": "hi"}]}, timeout=60)
        assert chat.status_code == 400 and "/classify" in chat.json()["error"]["message"]
        assert httpx.post(f"http://127.0.0.1:{port}/classify", json={"model": "nope", "input": "x"}, timeout=60).status_code == 404
        assert httpx.post(f"http://127.0.0.1:{port}/classify", json={"model": "tickets", "input": []}, timeout=60).status_code == 400


class Slow:
    """A stand-in for Served with a slow stream: the server's limits, not a model, are what is tested."""

    classifier, speech, vision, base_name, runs = False, False, False, "base", {"m": None}

    def __init__(self):
        self.stopped = []

    def names(self):
        return ["m"]

    def context(self):
        return 100

    def prompt_tokens(self, prompt, chat):
        return len(prompt.split())

    def generate(self, name, prompt, chat, max_tokens, temperature, top_p):
        return "ok", self.prompt_tokens(prompt, chat), 1

    def stream(self, name, prompt, chat, max_tokens, temperature, top_p, stop, counted=None):
        """Like Served.stream: tokens made in a thread of their own, which checks `stop` before each one."""
        import queue

        made = queue.Queue()

        def work():
            for _ in range(max_tokens):
                if stop.is_set():
                    self.stopped.append(time.time())
                    break
                time.sleep(0.05)
                made.put("tok ")
            made.put(None)

        threading.Thread(target=work, daemon=True).start()
        while (piece := made.get()) is not None:
            yield piece


def test_the_server_holds_under_abuse():
    """A chunked body past the limit, streams past --max-concurrency, a client that leaves mid-stream, a prompt past
    the context, and a wrong API key: each answered as it should be, quickly."""
    pytest.importorskip("fastapi")
    import httpx

    from adaptkit.runners.serve import create_app

    slow = Slow()
    with running(create_app(slow, max_concurrency=2, max_request_kb=4, max_tokens_limit=64, api_key="k")) as port:
        url, key = f"http://127.0.0.1:{port}/v1", {"Authorization": "Bearer k"}
        assert httpx.get(f"{url}/models").status_code == 401
        assert httpx.get(f"{url}/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{url}/models", headers=key).json()["data"][0]["id"] == "m"

        def chunks():  # no Content-Length: only counting the bytes as they arrive catches it
            for _ in range(100):
                yield b"x" * 1024

        started = time.perf_counter()
        big = httpx.post(f"{url}/completions", content=chunks(), headers={**key, "content-type": "application/json"})
        assert big.status_code == 413 and time.perf_counter() - started < 5

        long = httpx.post(f"{url}/completions", json={"model": "m", "prompt": "word " * 90, "max_tokens": 20}, headers=key)
        assert long.status_code == 400 and long.json()["error"]["code"] == "context_length_exceeded"

        body = {"model": "m", "prompt": "hi", "max_tokens": 40, "stream": True}
        with httpx.Client(timeout=30) as one, httpx.Client(timeout=30) as two:
            with one.stream("POST", f"{url}/completions", json=body, headers=key) as first, \
                    two.stream("POST", f"{url}/completions", json=body, headers=key) as second:
                reading = [first.iter_bytes(), second.iter_bytes()]  # kept: a dropped iterator closes its stream
                for stream in reading:
                    next(stream)  # two streams under way
                third = httpx.post(f"{url}/completions", json={"model": "m", "prompt": "hi", "max_tokens": 5}, headers=key)
                assert third.status_code == 429  # streams count until they end
            left = time.time()  # both clients gone mid-stream
        deadline = time.time() + 5
        while len(slow.stopped) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert len(slow.stopped) == 2 and max(slow.stopped) - left < 1.5  # generation stopped within a token or so
        assert httpx.post(f"{url}/completions", json={"model": "m", "prompt": "hi", "max_tokens": 5}, headers=key).status_code == 200  # freed


def test_models_lists_served_names_not_local_paths(server):
    import httpx

    ids = [m["id"] for m in httpx.get(f"{server['url']}/models").json()["data"]]
    assert ids and not any("/" in name for name in ids if name not in ("support", "sales"))


def _without_chat_template(source: Path, target: Path) -> Path:
    """A copy of the tiny model whose tokenizer has no chat template (a base model's)."""
    import shutil

    shutil.copytree(source, target)
    (target / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    return target


def test_a_run_without_a_chat_template_serves_chat_as_it_predicts(tmp_path, tiny_causal_lm):
    pytest.importorskip("fastapi")
    from openai import OpenAI

    from adaptkit.runners.serve import Served, create_app

    base = _without_chat_template(Path(tiny_causal_lm), tmp_path / "base")
    run = tmp_path / "plain"
    _train(run, base, 0.01)
    saved = json.loads((run / "tokenizer_config.json").read_text()).get("chat_template") or (run / "chat_template.jinja").read_text()
    assert "adaptkit: the prompt/response format" in saved  # the format it trained on, saved as its chat template
    merged = tmp_path / "merged"
    assert CliRunner().invoke(cli, ["merge", str(run), "-o", str(merged)]).exit_code == 0
    prompt = json.loads((ROOT / "examples/data/instructions_eval.jsonl").read_text().splitlines()[0])["prompt"]
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": prompt}) + "\n")
    predicted = CliRunner().invoke(cli, ["predict", str(run), str(rows), "--max-new-tokens", "8"])
    assert predicted.exit_code == 0, predicted.output
    expected = json.loads(predicted.stdout)["prediction"]
    with running(create_app(Served([str(run)]), max_concurrency=1)) as port:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        chat = client.chat.completions.create(model="plain", messages=[{"role": "user", "content": prompt}], max_tokens=8,
                                              temperature=0)
    assert chat.choices[0].message.content.strip() == expected.strip()
    from transformers import AutoTokenizer

    rendered = AutoTokenizer.from_pretrained(merged).apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                                         add_generation_prompt=True)
    assert rendered == prompt  # the merged model's template writes the prompt as the run trained on it
