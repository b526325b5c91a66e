"""Scripted OpenAI-compatible endpoints on 127.0.0.1 for tests: a handler answers each chat request from its body."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def send_json(handler: BaseHTTPRequestHandler, payload: dict | str, status: int = 200) -> None:
    """Answer with a JSON body (a dict, or text sent as it is)."""
    body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class ChatHandler(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions with `answer(prompt)` (the last message's content), and the usage it reports."""

    usage = {"prompt_tokens": 80, "completion_tokens": 12}

    def answer(self, prompt: str) -> str:
        raise NotImplementedError

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        content = self.answer(body["messages"][-1]["content"])
        send_json(self, {"choices": [{"message": {"role": "assistant", "content": content}}], "usage": self.usage})

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]):
    """The handler served on a free port of 127.0.0.1; yields its /v1 URL; stopped on leaving."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
