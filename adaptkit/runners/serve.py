"""Serve finished runs over the OpenAI protocol (FastAPI + uvicorn): `/v1/chat/completions`, `/v1/completions`,
`/v1/models`; a classifier run on `/classify` instead (vLLM's request and response: `input`, and per input its
`label`, `probs` and `num_classes`). One base model is loaded once; each run's adapter is selected by the request's `model` (the run
folder's name), and the base itself answers under its own name: the one-adapter-per-tenant setup the advisor
recommends. adaptkit's own openai backend (ICL, RAG, tool use, prompt engineering, compare) can point at it.

Generation is serialised on the model (one request generates at a time, under a lock); up to `max_concurrency`
requests wait their turn and a request past that gets 429. Bodies over `max_request_kb` get 413, a malformed request
400, an unknown model 404, all as OpenAI-style error objects. `stream: true` sends server-sent events as tokens come.
"""

# No `from __future__ import annotations` here: FastAPI reads the request models from the endpoints' annotations.
import json
import threading
import time
import uuid
from contextlib import nullcontext

from adaptkit.errors import InputError
from adaptkit.runners.predict import CLASSIFIER, as_trained, load_model, open_run


class Served:
    """The loaded model and the names it answers to."""

    def __init__(self, folders: list[str], trust_remote_code: bool = False):
        runs = [open_run(folder, trust_remote_code=trust_remote_code) for folder in folders]
        kinds = {run.recipe.task == CLASSIFIER for run in runs}
        if len(kinds) > 1:
            raise InputError("classifiers and text generators cannot be served together: serve each kind on its own")
        self.classifier = kinds == {True}  # answers /classify, not chat
        if len(runs) > 1 and not all(run.adapter for run in runs):
            full = next(run for run in runs if not run.adapter)
            raise InputError(f"{full.folder} trained all weights: it is a model of its own; serve it alone (adapters share one base)")
        bases = sorted({run.recipe.model for run in runs})
        if len(bases) > 1:
            raise InputError(f"the adapters must share one base model to be served together; these have {', '.join(bases)}")
        names = [run.folder.name for run in runs]
        if len(set(names)) < len(names):
            raise InputError(f"two runs have the same folder name ({', '.join(names)}): the name is the model a request asks for")
        self.runs = dict(zip(names, runs))
        self.base_name = bases[0]
        self.model, self.tokenizer = load_model(runs[0])
        self.adapters = runs[0].adapter
        for name, run in list(self.runs.items()):
            if self.adapters and run is not runs[0]:
                self.model.load_adapter(str(run.weights), adapter_name=name)
        if self.adapters:  # PeftModel names the first adapter "default": give it its run's name too
            self.model.load_adapter(str(runs[0].weights), adapter_name=names[0])
        self.lock = threading.Lock()

    def names(self) -> list[str]:
        base = self.adapters and self.base_name not in self.runs and not self.classifier  # a base's class head is untrained
        return list(self.runs) + ([self.base_name] if base else [])

    def classify(self, name: str, texts: list[str]) -> tuple[list[dict], int]:
        """Each text's label and class probabilities (in the run's label order), as `adaptkit predict` gives them, and
        the tokens read."""
        from adaptkit.runners.predict import classify

        run = self.runs[name]
        rows = [{run.recipe.data.text_column: text} for text in texts]
        with self.lock, self.selected(name):
            predicted = classify(self.model, self.tokenizer, run, rows, 32, lambda done, total: None)
        tokens = sum(len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=run.recipe.training.max_length)["input_ids"])
        return predicted, tokens

    def selected(self, name: str):
        """A context with the asked-for weights active (call under the lock)."""
        if not self.adapters:
            return nullcontext()
        if name == self.base_name and name not in self.runs:
            return self.model.disable_adapter()
        self.model.set_adapter(name)
        return nullcontext()

    def encode(self, prompt: str, chat: bool):
        run = next(iter(self.runs.values()))
        specials = not chat and not run.recipe.data.messages_column
        import torch

        ids = torch.tensor([as_trained(self.tokenizer, prompt, specials, 1 << 30)], device=self.model.device)  # as predict does
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def options(self, max_tokens: int, temperature: float, top_p: float) -> dict:
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
        return {"max_new_tokens": max_tokens, "pad_token_id": self.tokenizer.pad_token_id, **sampling}

    def generate(self, name: str, prompt: str, chat: bool, max_tokens: int, temperature: float, top_p: float) -> tuple[str, int, int]:
        import torch

        inputs = self.encode(prompt, chat)
        with self.lock, self.selected(name), torch.no_grad():
            output = self.model.generate(**inputs, **self.options(max_tokens, temperature, top_p))
        new = output[0, inputs["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True), int(inputs["input_ids"].shape[1]), int(new.shape[0])

    def stream(self, name: str, prompt: str, chat: bool, max_tokens: int, temperature: float, top_p: float):
        """Pieces of text as they are generated (the model stays locked until the last one)."""
        import torch
        from transformers import TextIteratorStreamer

        inputs = self.encode(prompt, chat)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)

        def work():
            with self.lock, self.selected(name), torch.no_grad():
                self.model.generate(**inputs, **self.options(max_tokens, temperature, top_p), streamer=streamer)

        threading.Thread(target=work, daemon=True).start()
        yield from streamer


MAX_INPUTS = 256  # texts one /classify request may hold


def _cut(text: str, stop) -> tuple[str, bool]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cuts = [text.index(s) for s in stops if s and s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)


def create_app(served: Served, max_concurrency: int = 4, max_request_kb: int = 256, max_tokens_limit: int = 2048):
    """The FastAPI application over a loaded model."""
    from typing import Literal, Optional, Union

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field

    class Message(BaseModel):
        model_config = ConfigDict(extra="allow")
        role: Literal["system", "user", "assistant", "tool"]
        content: str

    class Common(BaseModel):
        model_config = ConfigDict(extra="allow")  # clients send fields we do not use (seed, user, ...)
        model: str
        max_tokens: Optional[int] = Field(None, ge=1, le=max_tokens_limit)
        max_completion_tokens: Optional[int] = Field(None, ge=1, le=max_tokens_limit)
        temperature: float = Field(1.0, ge=0, le=2)
        top_p: float = Field(1.0, gt=0, le=1)
        n: int = Field(1, ge=1, le=1)
        stream: bool = False
        stop: Optional[Union[str, list[str]]] = None

        def budget(self) -> int:
            return self.max_completion_tokens or self.max_tokens or 256

    class ChatRequest(Common):
        messages: list[Message] = Field(min_length=1)

    class CompletionRequest(Common):
        prompt: Union[str, list[str]]

    app = FastAPI(title="adaptkit serve", docs_url=None, redoc_url=None)
    state = {"active": 0}
    gate = threading.Lock()

    def error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "body"
        return error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.middleware("http")
    async def limits(request: Request, call_next):
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > max_request_kb * 1024:
            return error(413, f"request body over {max_request_kb} KB", code="request_too_large")
        if request.method != "POST":
            return await call_next(request)
        with gate:
            if state["active"] >= max_concurrency:
                response = error(429, f"{max_concurrency} requests are in flight: retry shortly", kind="rate_limit_error")
                response.headers["Retry-After"] = "1"
                return response
            state["active"] += 1
        try:
            return await call_next(request)
        finally:
            with gate:
                state["active"] -= 1

    @app.get("/v1/models")
    def models():
        created = int(time.time())
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "adaptkit"}
                                           for name in served.names()]}

    def answer(body: Common, prompt: str, chat: bool):
        if body.model not in served.names():
            return error(404, f"model `{body.model}` is not served here; served: {', '.join(served.names())}", code="model_not_found")
        ident, created = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}", int(time.time())
        args = (body.model, prompt, chat, body.budget(), body.temperature, body.top_p)
        if body.stream:
            def events():
                kind = "chat.completion.chunk" if chat else "text_completion"
                if chat:
                    yield _sse({"id": ident, "object": kind, "created": created, "model": body.model,
                                "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
                text = ""
                for piece in served.stream(*args):
                    if not piece:
                        continue
                    cut, stopped = _cut(text + piece, body.stop)
                    piece, text = cut[len(text):], cut
                    if piece:
                        choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
                        yield _sse({"id": ident, "object": kind, "created": created, "model": body.model,
                                    "choices": [{**choice, "finish_reason": None}]})
                    if stopped:
                        break
                last = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
                yield _sse({"id": ident, "object": kind, "created": created, "model": body.model,
                            "choices": [{**last, "finish_reason": "stop"}]})
                yield "data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        text, prompt_tokens, new_tokens = served.generate(*args)
        text, stopped = _cut(text, body.stop)
        finish = "stop" if stopped or new_tokens < body.budget() else "length"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": new_tokens, "total_tokens": prompt_tokens + new_tokens}
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            return {"id": ident, "object": "chat.completion", "created": created, "model": body.model, "choices": [choice], "usage": usage}
        return {"id": ident, "object": "text_completion", "created": created, "model": body.model,
                "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}], "usage": usage}

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(extra="allow")
        model: str
        input: Union[str, list[str]] = Field(description="one text, or a list of up to MAX_INPUTS")

    @app.post("/classify")
    def classify(body: ClassifyRequest):
        if not served.classifier:
            return error(400, "this model generates text: use /v1/chat/completions or /v1/completions")
        if body.model not in served.names():
            return error(404, f"model `{body.model}` is not served here; served: {', '.join(served.names())}", code="model_not_found")
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts or len(texts) > MAX_INPUTS or not all(isinstance(t, str) and t.strip() for t in texts):
            return error(400, f"input: one to {MAX_INPUTS} non-empty texts")
        predicted, tokens = served.classify(body.model, texts)
        labels = served.runs[body.model].labels
        data = [{"index": i, "label": row["prediction"], "probs": [row["probabilities"][label] for label in labels],
                 "num_classes": len(labels)} for i, row in enumerate(predicted)]
        return {"id": f"classify-{uuid.uuid4().hex[:24]}", "object": "list", "created": int(time.time()), "model": body.model,
                "labels": labels, "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}}

    @app.post("/v1/chat/completions")
    def chat_completions(body: ChatRequest):
        if served.classifier:
            return error(400, "this model is a classifier: POST /classify with {\"model\": ..., \"input\": [texts]}")
        if not getattr(served.tokenizer, "chat_template", None):
            return error(400, "this model has no chat template: use /v1/completions with a prompt")
        turns = [{"role": m.role, "content": m.content} for m in body.messages]
        prompt = served.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return answer(body, prompt, chat=True)

    @app.post("/v1/completions")
    def completions(body: CompletionRequest):
        if served.classifier:
            return error(400, "this model is a classifier: POST /classify with {\"model\": ..., \"input\": [texts]}")
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            return error(400, "prompt: one prompt per request")
        return answer(body, prompts[0], chat=False)

    return app


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"
