"""Where training-free recipes send prompts: a local Transformers model, or any OpenAI-compatible endpoint.

The endpoint client uses the standard library only: timeouts, retries with backoff on 429 and 5xx (honouring
Retry-After), a concurrency limit, and an optional on-disk cache keyed by the request. The API key is read from
the environment variable the recipe names and is never printed, logged or written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from adaptkit.errors import AdaptkitError, InputError
from adaptkit.runners.models import resolve_model


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
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.logging.set_verbosity_error()
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


class OpenAIBackend:
    """Any OpenAI-compatible /chat/completions endpoint."""

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, timeout_s: float = 60.0,
                 max_retries: int = 4, concurrency: int = 4, cache_dir: str | None = None, backoff_s: float = 1.0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.name = model
        self.timeout_s, self.max_retries, self.concurrency, self.backoff_s = timeout_s, max_retries, concurrency, backoff_s
        self._key = None
        if api_key_env:
            self._key = os.environ.get(api_key_env)
            if not self._key:
                raise InputError(f"backend.api_key_env: the environment variable {api_key_env} is not set")
        self.cache = Path(cache_dir) if cache_dir else None
        if self.cache:
            self.cache.mkdir(parents=True, exist_ok=True)
        self.context = 128_000

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIBackend({self.url!r}, model={self.name!r})"

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # about four characters a token; the server counts exactly

    def chat(self, messages: list[dict], max_tokens: int = 64, temperature: float = 0.0, tools: list[dict] | None = None) -> dict:
        body = {"model": self.name, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        if tools:
            body["tools"] = [{"type": "function", "function": tool} for tool in tools]
        data = self._cached(body)
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"{self.url}: the response has no choices[0].message") from None
        calls = []
        for call in message.get("tool_calls") or []:
            function = call.get("function", {})
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except ValueError:
                arguments = None
            calls.append({"name": function.get("name"), "arguments": arguments, "id": call.get("id")})
        usage = data.get("usage") or {}
        return {"content": (message.get("content") or "").strip(), "tool_calls": calls,
                "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens")}

    def map(self, function, items: list) -> list:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(function, items))

    def _cached(self, body: dict) -> dict:
        key = hashlib.sha256(json.dumps({"url": self.url, **body}, sort_keys=True).encode()).hexdigest()
        path = self.cache / f"{key}.json" if self.cache else None
        if path and path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        data = self._post(body)
        if path:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, path)
        return data

    def _post(self, body: dict) -> dict:
        payload = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    text = response.read().decode("utf-8", errors="replace")
                try:
                    return json.loads(text)
                except ValueError:
                    raise BackendError(f"{self.url}: the response is not JSON ({text[:80]!r})") from None
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code not in (429, 500, 502, 503, 504):
                    raise BackendError(f"{self.url}: HTTP {exc.code} {exc.reason} (not retried)") from None
                wait = _retry_after(exc) or self.backoff_s * 2 ** attempt
            except (TimeoutError, socket.timeout):
                last, wait = f"no answer within {self.timeout_s:g} s", self.backoff_s * 2 ** attempt
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                    last, wait = f"no answer within {self.timeout_s:g} s", self.backoff_s * 2 ** attempt
                else:
                    raise BackendError(f"cannot reach {self.url}: {exc.reason} (is the server running, and base_url right?)") from None
            if attempt < self.max_retries:
                time.sleep(min(wait, 30.0))
        raise BackendError(f"{self.url}: {last} after {self.max_retries + 1} attempts")


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    try:
        return float(exc.headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None


def make_backend(recipe):
    """The backend a recipe names."""
    block = recipe.backend
    if block.kind == "openai":
        if not block.base_url:
            raise InputError("backend.base_url is required for kind openai (e.g. http://localhost:8000/v1)")
        return OpenAIBackend(block.base_url, block.model or recipe.model, block.api_key_env, block.timeout_s,
                             block.max_retries, block.concurrency, block.cache_dir)
    return LocalBackend(recipe.model, recipe.trust_remote_code)
