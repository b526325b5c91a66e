"""Where training-free recipes send prompts: a local Transformers model, or any OpenAI-compatible endpoint.

The endpoint client (httpx) bounds each whole request by timeout_s, retries 429, 5xx, timeouts and dropped
connections with backoff (honouring a sane Retry-After), never follows a redirect, keeps a concurrency limit, and
has an optional on-disk cache keyed by the request. The API key is read from the environment variable the recipe
names, sent only to base_url, and never printed, logged or written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from adaptkit._files import write_atomic
from adaptkit.errors import AdaptkitError, InputError
from adaptkit.models import resolve_model


class BackendError(AdaptkitError):
    """The model endpoint failed in a way retries did not fix."""


def render_plain(messages: list[dict]) -> str:
    """A prompt for models without a chat template."""
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nassistant:"


_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>|(\{\s*\"name\"\s*:.*\})", re.DOTALL)


def parse_tool_calls(text: str) -> list[dict]:
    """Tool calls written as JSON in generated text (<tool_call>{...}</tool_call> or a bare {"name": ...})."""
    calls = []
    for wrapped, bare in _TOOL_CALL.findall(text or ""):
        try:
            data = json.loads(wrapped or bare)
        except ValueError:
            calls.append({"name": None, "arguments": None, "raw": wrapped or bare})
            continue
        if isinstance(data, dict) and "name" in data:
            calls.append({"name": data["name"], "arguments": data.get("arguments", data.get("parameters", {}))})
    return calls


class LocalBackend:
    """A causal LM run with Transformers on this machine."""

    def __init__(self, model: str, trust_remote_code: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from adaptkit.runners.core import quiet_transformers

        quiet_transformers()  # no per-weight "Loading weights" bars in a training-free run's output
        path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.sep_token
        self.model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust_remote_code)
        self.model.eval()
        self.context = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)
        self.name = model

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
        return render_plain(messages)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat(self, messages: list[dict], max_tokens: int = 64, temperature: float = 0.0, tools: list[dict] | None = None) -> dict:
        import torch

        prompt = self.render(messages, tools)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False, return_token_type_ids=False)
        inputs = {k: v[:, -(self.context - max_tokens):] for k, v in inputs.items()}
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=max_tokens, do_sample=temperature > 0,
                                         temperature=temperature or None, pad_token_id=self.tokenizer.pad_token_id)
        text = self.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        return {"content": text, "tool_calls": parse_tool_calls(text) if tools else [],
                "prompt_tokens": int(inputs["input_ids"].shape[1]), "completion_tokens": int(output.shape[1] - inputs["input_ids"].shape[1])}

    def option_scores(self, messages: list[dict], options: list[str]) -> list[float]:
        """Log-likelihood of each option as the reply (summed over its tokens): classification without parsing."""
        import torch

        prompt_ids = self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]
        scores = []
        with torch.no_grad():
            for option in options:
                option_ids = self.tokenizer(" " + option, add_special_tokens=False)["input_ids"]
                ids = (prompt_ids + option_ids)[-self.context:]
                logits = self.model(input_ids=torch.tensor([ids])).logits[0]
                logprobs = torch.log_softmax(logits[:-1].float(), dim=-1)
                start = len(ids) - len(option_ids)
                targets = torch.tensor(ids[start:])
                scores.append(float(logprobs[start - 1:len(ids) - 1].gather(1, targets[:, None]).sum()))
        return scores

    def map(self, function, items: list) -> list:
        return [function(item) for item in items]


class _Deadline(Exception):
    """The whole request ran past timeout_s."""


RETRIED_STATUS = (429, 500, 502, 503, 504)
MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class OpenAIBackend:
    """Any OpenAI-compatible /chat/completions endpoint, over httpx.

    Redirects are never followed (a POST stays a POST, and the key goes only to base_url's origin); timeout_s bounds
    each whole request, a trickling body included; 429, 5xx, timeouts and dropped connections are retried with
    backoff (a sane Retry-After is honoured); a reply without choices is an error and is never cached.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, timeout_s: float = 60.0,
                 max_retries: int = 4, concurrency: int = 4, cache_dir: str | None = None, backoff_s: float = 1.0):
        import httpx

        self.url = base_url.rstrip("/") + "/chat/completions"
        if not self.url.startswith(("http://", "https://")):
            raise InputError(f"backend.base_url must start with http:// or https://, got {base_url[:80]!r}")
        self.name = model
        self.timeout_s, self.max_retries, self.concurrency, self.backoff_s = timeout_s, max_retries, concurrency, backoff_s
        self._key = None
        if api_key_env:
            self._key = os.environ.get(api_key_env)
            if not self._key:
                raise InputError(f"backend.api_key_env: the environment variable {api_key_env} is not set")
        self.cache = Path(cache_dir) if cache_dir else None  # made at the first answer worth keeping: a failed run leaves none
        if self.cache and self.cache.exists() and not self.cache.is_dir():
            raise InputError(f"backend.cache_dir: {self.cache} is a file, not a folder")
        self.context = 128_000
        plain = self.url.startswith("http://")  # no TLS at all: there is no certificate to check, so no CA file to read
        try:
            self._client = httpx.Client(follow_redirects=False, timeout=httpx.Timeout(timeout_s), verify=not plain)
        except OSError as exc:
            raise InputError(f"backend.base_url: cannot set up TLS ({exc.strerror or exc.__class__.__name__}); check the "
                             "certificate files SSL_CERT_FILE / SSL_CERT_DIR name") from None
        self._requests = ThreadPoolExecutor(max_workers=concurrency + 2, thread_name_prefix="adaptkit-http")
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIBackend({self.url!r}, model={self.name!r})"

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # about four characters a token; the server counts exactly

    def chat(self, messages: list[dict], max_tokens: int = 64, temperature: float = 0.0, tools: list[dict] | None = None) -> dict:
        body = {"model": self.name, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        if tools:
            body["tools"] = [{"type": "function", "function": tool} for tool in tools]
        data = self._cached(body)
        message = data["choices"][0]["message"]
        calls = []
        for call in message.get("tool_calls") or []:
            function = call.get("function", {}) if isinstance(call, dict) else {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except (ValueError, TypeError):
                arguments = None
            calls.append({"name": function.get("name"), "arguments": arguments, "id": call.get("id") if isinstance(call, dict) else None})
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        content = (message.get("content") or "").strip()
        # a server that reports no usage: about four characters a token, so costs are never zero
        prompt = usage.get("prompt_tokens") or self.count_tokens("".join(str(m.get("content") or "") for m in messages))
        return {"content": content, "tool_calls": calls, "prompt_tokens": prompt,
                "completion_tokens": usage.get("completion_tokens") if usage.get("completion_tokens") is not None else self.count_tokens(content)}

    def map(self, function, items: list) -> list:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(function, items))

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _cached(self, body: dict) -> dict:
        key = hashlib.sha256(json.dumps({"url": self.url, **body}, sort_keys=True).encode()).hexdigest()
        path = self.cache / f"{key}.json" if self.cache else None
        with self._lock(key):  # one request per entry at a time: concurrent twins wait and read the cache
            if path and path.is_file():
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                    if _has_message(data):
                        return data
                except ValueError:
                    pass  # a damaged entry is asked again
            data = self._post(body)
            if not _has_message(data):
                raise BackendError(f"{self.url}: the response has no choices[0].message (not cached)")
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, json.dumps(data))
            return data

    def _post(self, body: dict) -> dict:
        import httpx

        payload = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = self.backoff_s * 2 ** attempt
            try:
                status, location, retry_after, content = self._exchange(payload, headers)
            except (_Deadline, httpx.TimeoutException):
                last = f"no answer within {self.timeout_s:g} s"
            except httpx.ConnectError as exc:
                raise BackendError(f"cannot reach {self.url}: {_reason(exc)} (is the server running, and base_url right?)") from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                last = f"the connection dropped ({_reason(exc)})"
            except httpx.HTTPError as exc:
                raise BackendError(f"{self.url}: {exc.__class__.__name__}: {_reason(exc)}") from None
            else:
                if 300 <= status < 400:
                    raise BackendError(f"{self.url}: HTTP {status} redirect to {location[:120]!r} (not followed: a request and its key "
                                       "go only to backend.base_url; set it to the final address)")
                if status == 200:
                    try:
                        return json.loads(content.decode("utf-8", errors="replace"))
                    except ValueError:
                        raise BackendError(f"{self.url}: the response is not JSON ({content[:80]!r})") from None
                if status not in RETRIED_STATUS:
                    raise BackendError(f"{self.url}: HTTP {status} (not retried)")
                last = f"HTTP {status}"
                wait = retry_after if retry_after is not None else wait
            if attempt < self.max_retries:
                time.sleep(min(wait, 30.0))
        raise BackendError(f"{self.url}: {last} after {self.max_retries + 1} attempts")

    def _exchange(self, payload: bytes, headers: dict) -> tuple[int, str, float | None, bytes]:
        """One POST, bounded as a whole by timeout_s: (status, redirect location, Retry-After seconds, body)."""
        cancelled = threading.Event()

        def request():
            with self._client.stream("POST", self.url, content=payload, headers=headers) as response:
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    if cancelled.is_set():
                        raise _Deadline()
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise BackendError(f"{self.url}: the response is larger than {MAX_RESPONSE_BYTES >> 20} MB")
                    chunks.append(chunk)
                return (response.status_code, response.headers.get("Location", ""),
                        _retry_after(response.headers.get("Retry-After")), b"".join(chunks))

        future = self._requests.submit(request)
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            cancelled.set()  # the worker stops at its next chunk, or at httpx's own read timeout
            raise _Deadline() from None


def _has_message(data) -> bool:
    try:
        return isinstance(data["choices"][0]["message"], dict)
    except (KeyError, IndexError, TypeError):
        return False


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; anything but a finite number from 0 to an hour is ignored."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and 0 <= seconds <= 3600 else None


def make_backend(recipe):
    """The backend a recipe names."""
    block = recipe.backend
    if block.kind == "openai":
        if not block.base_url:
            raise InputError("backend.base_url is required for kind openai (e.g. http://localhost:8000/v1)")
        return OpenAIBackend(block.base_url, block.model or recipe.model, block.api_key_env, block.timeout_s,
                             block.max_retries, block.concurrency, block.cache_dir)
    from adaptkit.models import check_reachable

    check_reachable(recipe.model)  # a hub id neither here nor reachable: one line now, not a minute of retries
    return LocalBackend(recipe.model, recipe.trust_remote_code)
