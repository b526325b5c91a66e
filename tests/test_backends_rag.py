"""The OpenAI-compatible backend against a small server on 127.0.0.1, and RAG with the embedded MiniLM."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adaptkit.runners.backends import BackendError, OpenAIBackend, parse_tool_calls
from tests.helpers_http import send_json

ROOT = Path(__file__).parent.parent


class Scripted(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions from a shared script: ok, 429, 500, slow, badjson."""

    script: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        Scripted.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        action = Scripted.script.pop(0) if Scripted.script else "ok"
        if callable(action):  # a function of the request body returns the assistant message
            action = {"choices": [{"message": {"role": "assistant", **action(body)}}]}
        if isinstance(action, dict):
            send_json(self, action)
            return
        if action in ("429", "500"):
            self.send_response(int(action))
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        if action == "slow":
            time.sleep(1.5)
        send_json(self, "not json at all" if action == "badjson" else {
            "choices": [{"message": {"role": "assistant", "content": "Returns are accepted within 30 days [1]."}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 9}})

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Scripted.script, Scripted.seen = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def backend(url, **kw):
    return OpenAIBackend(url, "served-model", timeout_s=kw.pop("timeout_s", 5), backoff_s=0.01, **kw)


def test_retries_429_then_succeeds(server):
    Scripted.script = ["429", "500", "ok"]
    reply = backend(server).chat([{"role": "user", "content": "hi"}])
    assert "30 days" in reply["content"] and len(Scripted.seen) == 3
    assert Scripted.seen[0]["path"] == "/v1/chat/completions" and Scripted.seen[0]["body"]["model"] == "served-model"


def test_gives_up_after_retries(server):
    Scripted.script = ["429"] * 10
    with pytest.raises(BackendError, match="HTTP 429 after 3 attempts"):
        backend(server, max_retries=2).chat([{"role": "user", "content": "hi"}])


def test_timeout_is_retried_then_reported(server):
    Scripted.script = ["slow", "slow", "slow"]
    with pytest.raises(BackendError, match="no answer within 0.3 s"):
        backend(server, timeout_s=0.3, max_retries=1).chat([{"role": "user", "content": "hi"}])


def test_bad_json_is_a_clear_error(server):
    Scripted.script = ["badjson"]
    with pytest.raises(BackendError, match="not JSON"):
        backend(server).chat([{"role": "user", "content": "hi"}])


def test_unreachable_server():
    with pytest.raises(BackendError, match=r"cannot reach .* \(is the server running"):
        backend("http://127.0.0.1:9/v1", max_retries=0).chat([{"role": "user", "content": "hi"}])


def test_cache_answers_repeats_without_a_request(server, tmp_path):
    client = backend(server, cache_dir=str(tmp_path / "cache"))
    first = client.chat([{"role": "user", "content": "same"}])
    second = client.chat([{"role": "user", "content": "same"}])
    assert first == second and len(Scripted.seen) == 1


def test_key_is_sent_but_never_shown(server, monkeypatch):
    monkeypatch.setenv("ADAPTKIT_TEST_KEY", "sk-very-secret")
    client = backend(server, api_key_env="ADAPTKIT_TEST_KEY")
    client.chat([{"role": "user", "content": "hi"}])
    assert Scripted.seen[0]["auth"] == "Bearer sk-very-secret"
    assert "sk-very-secret" not in repr(client)
    monkeypatch.delenv("ADAPTKIT_TEST_KEY")
    with pytest.raises(Exception, match="ADAPTKIT_TEST_KEY is not set"):
        backend(server, api_key_env="ADAPTKIT_TEST_KEY")


def test_tool_calls_parsed_from_text():
    assert parse_tool_calls('<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>') == [
        {"name": "calculator", "arguments": {"expression": "2+2"}}]
    assert parse_tool_calls("no tools here") == []


# --- RAG


def rag_args(tmp_path):
    return [f"output_dir={tmp_path / 'rag'}", f"rag.index_dir={tmp_path / 'index'}"]


def test_rag_retrieval_is_real_offline(invoke, tmp_path):
    pytest.importorskip("sentence_transformers")
    result = invoke("run", "rag", *rag_args(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["eval"]["questions"] == 36
    assert metrics["eval"]["recall_at_k"] >= 0.9 and metrics["eval"]["mrr"] >= 0.75  # the stated floor
    assert metrics["index"]["embedded_files"] == 14
    rows = [json.loads(line) for line in (tmp_path / "rag" / "retrievals.jsonl").read_text().splitlines()]
    assert len(rows) == 36 and len(rows[0]["retrieved"]) == 3


def test_rag_reingests_only_changed_files(invoke, tmp_path):
    pytest.importorskip("sentence_transformers")
    import shutil

    corpus = tmp_path / "docs"
    shutil.copytree(ROOT / "examples" / "rag" / "docs", corpus)
    args = [f"rag.corpus={corpus}", f"rag.index_dir={tmp_path / 'index'}", "--json", "--overwrite"]
    first = json.loads(invoke("run", "rag", f"output_dir={tmp_path / 'a'}", *args).stdout)
    (corpus / "shipping.md").write_text((corpus / "shipping.md").read_text() + "\nSaturday delivery costs $9.99.\n")
    (corpus / "stores.md").unlink()  # and the questions it answered: a question about no file of the corpus is refused
    questions = (ROOT / "examples" / "rag" / "questions.jsonl").read_text().splitlines()
    (tmp_path / "questions.jsonl").write_text("".join(q + "\n" for q in questions if json.loads(q)["source"] != "stores.md"))
    second = json.loads(invoke("run", "rag", f"output_dir={tmp_path / 'a'}", f"data.eval={tmp_path / 'questions.jsonl'}", *args).stdout)
    assert first["index"]["embedded_files"] == 14
    assert (second["index"]["embedded_files"], second["index"]["reused_files"], second["index"]["removed_files"]) == (1, 12, 1)


def test_rag_generation_through_an_endpoint_keeps_the_key_secret(invoke, tmp_path, server, monkeypatch):
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("RAG_TEST_KEY", "sk-do-not-write-me")
    cache = tmp_path / "cache"
    result = invoke("run", "rag", *rag_args(tmp_path), "rag.generate=true", "backend.kind=openai", f"backend.base_url={server}",
                    "backend.api_key_env=RAG_TEST_KEY", f"backend.cache_dir={cache}", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["eval"]["answers_with_valid_citations"] == 1.0 and "answer_contains_expected" in metrics["eval"]
    e = metrics["eval"]  # the answers scored by the task's scorer, beside the same model asked with no sources
    assert e["primary_metric"] == "rougeL" and e["base"]["kind"].startswith("closed book")
    assert e["delta"]["rougeL"] == pytest.approx(e["rougeL"] - e["base"]["rougeL"], abs=1e-6)
    for path in list((tmp_path / "rag").rglob("*")) + list(cache.rglob("*")):
        if path.is_file():
            assert "sk-do-not-write-me" not in path.read_text(errors="replace"), path
    assert "sk-do-not-write-me" not in result.output


@pytest.mark.parametrize("override, words", [
    ("rag.corpus=/nonexistent", "is not a folder"),
    ("data.eval=examples/data/support_tickets_test.jsonl",
     "columns `question`, `source` not found (columns: text, label); name the ones to read: rag.question_column=COLUMN "
     "rag.source_column=COLUMN"),
    ("rag.top_k=0", "rag.top_k"),
])
def test_rag_bad_input(invoke, tmp_path, override, words):
    result = invoke("run", "rag", *rag_args(tmp_path), override.replace("examples/", f"{ROOT}/examples/"))
    assert result.exit_code == 2 and words in result.stderr
