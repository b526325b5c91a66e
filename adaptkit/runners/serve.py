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
import functools
import json
import threading
import time
import uuid
from contextlib import nullcontext

from adaptkit.errors import InputError
from adaptkit.runners.predict import CLASSIFIER, SPEECH, VLM, as_trained, load_model, open_run, plain_template


class Served:
    """The loaded model and the names it answers to."""

    def __init__(self, folders: list[str], trust_remote_code: bool = False):
        runs = [open_run(folder, trust_remote_code=trust_remote_code) for folder in folders]
        image = next((run for run in runs if run.recipe.task == "image_classification"), None)
        if any(run.recipe.task == VLM for run in runs) and not all(run.recipe.task == VLM for run in runs):
            raise InputError("vision-language runs and text runs cannot be served together: serve each kind on its own")
        if image is not None:
            raise InputError(f"{image.folder} is an image classifier: serve answers text; classify images with "
                             f"`adaptkit predict {image.folder} IMAGE_OR_FILE`")
        kinds = {"classifier" if run.recipe.task == CLASSIFIER else "speech" if run.recipe.task == SPEECH else "generator" for run in runs}
        if len(kinds) > 1:
            raise InputError(f"{' and '.join(sorted(kinds))} runs cannot be served together: serve each kind on its own")
        self.classifier = kinds == {"classifier"}  # answers /classify, not chat
        self.speech = kinds == {"speech"}  # answers /v1/audio/transcriptions
        self.vision = all(run.recipe.task == VLM for run in runs)  # chat messages may hold image parts
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
        self.base_name = _shown(bases[0])  # a local folder is served under its name, never its path
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
        base = base and not self.speech  # nor is the demo speech base's (and a base transcribes as it did before training)
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

    def look(self, name: str, images: list[str], prompt: list[dict], max_tokens: int, temperature: float, top_p: float
             ) -> tuple[str, int, int]:
        """A vision-language run's answer to chat messages with image parts (data URLs), as `adaptkit predict` answers."""
        from adaptkit.runners.predict import answer_chat

        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
        with self.lock, self.selected(name):
            return answer_chat(self.model, self.tokenizer, images, prompt, max_tokens, sampling, where="image",
                               max_pixels=self.runs[name].recipe.data.max_image_pixels if name in self.runs else 25_000_000)

    def transcribe(self, name: str, audio: bytes, language: str | None) -> tuple[str, float]:
        """A clip's transcript (as `adaptkit predict` gives it) and its length in seconds; InputError for a clip that does
        not read or is not at the model's sample rate."""
        import base64

        from adaptkit.methods.supervised.speech import read_audio
        from adaptkit.runners.predict import transcribe

        run = self.runs[name]
        clip = "data:audio/wav;base64," + base64.b64encode(audio).decode()
        samples, rate = read_audio(clip, "file")
        with self.lock, self.selected(name):
            text = transcribe(self.model, self.tokenizer, [clip], language or run.recipe.data.language, batch_size=1,
                              max_new_tokens=run.recipe.training.max_new_tokens)[0]
        return text, len(samples) / rate

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
        # the prompt column's text got the tokenizer's special tokens in training; a model's own chat template writes its own
        specials = not run.recipe.data.messages_column and (not chat or plain_template(self.tokenizer))
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

    def context(self) -> int | None:
        """Tokens the model reads at most (its position embeddings), when its config says."""
        config = getattr(self.model, "config", None)
        limit = getattr(config, "max_position_embeddings", None)
        return int(limit) if isinstance(limit, int) and limit > 0 else None

    def prompt_tokens(self, prompt: str, chat: bool) -> int:
        return int(self.encode(prompt, chat)["input_ids"].shape[1])

    def stream(self, name: str, prompt: str, chat: bool, max_tokens: int, temperature: float, top_p: float, stop: threading.Event,
               counted: dict | None = None):
        """Pieces of text as they are generated (the model stays locked until the last one). Setting `stop` (a client
        that went away) ends the generation at the next token and frees the model. `counted` gets the prompt's and the
        generation's tokens ("prompt", "new") once the last piece is out."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        inputs = self.encode(prompt, chat)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)

        class Gone(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return stop.is_set()

        def work():
            with self.lock, self.selected(name), torch.no_grad():
                output = self.model.generate(**inputs, **self.options(max_tokens, temperature, top_p), streamer=streamer,
                                             stopping_criteria=StoppingCriteriaList([Gone()]))
            if counted is not None:
                given = int(inputs["input_ids"].shape[1])
                counted.update(prompt=given, new=int(output.shape[1]) - given)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        yield from streamer
        thread.join(timeout=60)  # the streamer ends just before generate returns its tokens


MAX_INPUTS = 256  # texts one /classify request may hold


def _shown(model: str) -> str:
    """A model's name for clients: a hub id as it is, a local folder by its last part (no local path leaks)."""
    from pathlib import Path

    from adaptkit.models import looks_like_path

    return Path(model).name if looks_like_path(model) or Path(model).is_absolute() else model


def _cut(text: str, stop) -> tuple[str, bool]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cuts = [text.index(s) for s in stops if s and s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)


def create_app(served: Served, max_concurrency: int = 4, max_request_kb: int = 256, max_tokens_limit: int = 2048,
               api_key: str | None = None):
    """The FastAPI application over a loaded model; with `api_key`, every request needs `Authorization: Bearer KEY`."""
    from typing import Literal, Optional, Union

    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field

    class Message(BaseModel):
        model_config = ConfigDict(extra="allow")
        role: Literal["system", "user", "assistant", "tool"]
        content: Union[str, list[dict]]  # text, or OpenAI content parts (text, image_url)

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

    def error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "body"
        return error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(too_large_class())
    async def too_large(request, exc):
        return error(413, f"request body over {max_request_kb} KB", code="request_too_large")

    app.add_middleware(Guard, max_concurrency=max_concurrency, max_bytes=max_request_kb * 1024, api_key=api_key, error=error)

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
        context = served.context()
        if context:
            used = served.prompt_tokens(prompt, chat)
            if used + body.budget() > context:
                return error(400, f"the prompt is {used:,} tokens; with max_tokens {body.budget():,} that is over the model's context of "
                                  f"{context:,} tokens: shorten it or ask for fewer tokens", code="context_length_exceeded")
        if body.stream:
            async def events():
                import asyncio

                stop = threading.Event()  # set when the client goes away: generation ends at the next token
                counted: dict = {}
                pieces = served.stream(*args, stop, counted)
                kind = "chat.completion.chunk" if chat else "text_completion"
                try:
                    if chat:
                        yield _sse({"id": ident, "object": kind, "created": created, "model": body.model,
                                    "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
                    text, stopped = "", False
                    while (piece := await asyncio.to_thread(next, pieces, None)) is not None:  # None: generated and counted
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
                    finish = "stop" if stopped or counted.get("new", 0) < body.budget() else "length"
                    last = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
                    yield _sse({"id": ident, "object": kind, "created": created, "model": body.model,
                                "choices": [{**last, "finish_reason": finish}]})
                    if (getattr(body, "stream_options", None) or {}).get("include_usage") and "new" in counted:
                        yield _sse({"id": ident, "object": kind, "created": created, "model": body.model, "choices": [],
                                    "usage": {"prompt_tokens": counted["prompt"], "completion_tokens": counted["new"],
                                              "total_tokens": counted["prompt"] + counted["new"]}})
                    yield "data: [DONE]\n\n"
                finally:
                    stop.set()
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
            return error(400, "this model transcribes audio: POST /v1/audio/transcriptions" if served.speech else
                              "this model generates text: use /v1/chat/completions or /v1/completions")
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

    from fastapi import File, Form, UploadFile
    from fastapi.responses import PlainTextResponse

    @app.post("/v1/audio/transcriptions")
    def transcriptions(file: UploadFile = File(...), model: str = Form(...), language: Optional[str] = Form(None),
                       response_format: str = Form("json"), prompt: Optional[str] = Form(None), temperature: float = Form(0.0)):
        """OpenAI's transcription endpoint (multipart: file, model, language, response_format json|text|verbose_json);
        greedy decoding, so temperature and prompt are accepted and not used."""
        if not served.speech:
            return error(400, "this model does not transcribe audio: " + ("POST /classify" if served.classifier else
                                                                          "use /v1/chat/completions or /v1/completions"))
        if model not in served.names():
            return error(404, f"model `{model}` is not served here; served: {', '.join(served.names())}", code="model_not_found")
        if response_format not in ("json", "text", "verbose_json"):
            return error(400, f"response_format {response_format[:20]!r}: json, text or verbose_json (no subtitles: no timestamps)")
        try:
            text, seconds = served.transcribe(model, file.file.read(), language)
        except InputError as exc:
            return error(400, str(exc))
        if response_format == "text":
            return PlainTextResponse(text)
        if response_format == "verbose_json":
            return {"task": "transcribe", "language": language or served.runs[model].recipe.data.language, "duration": round(seconds, 3),
                    "text": text, "segments": []}
        return {"text": text, "usage": {"type": "duration", "seconds": round(seconds, 3)}}

    def look(body: ChatRequest):
        """A vision-language run's chat: image_url parts must be data URLs (the server fetches nothing and reads no
        path a client names); a stream carries the whole answer in one chunk."""
        if body.model not in served.names():
            return error(404, f"model `{body.model}` is not served here; served: {', '.join(served.names())}", code="model_not_found")
        images, prompt = [], []
        for m in body.messages:
            parts = [{"type": "text", "text": m.content}] if isinstance(m.content, str) else []
            for part in m.content if isinstance(m.content, list) else []:
                if part.get("type") == "text":
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
                elif part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url", "") if isinstance(part.get("image_url"), dict) else ""
                    if not str(url).startswith("data:image/"):
                        return error(400, "image_url: send the image inline as a data URL (data:image/png;base64,...); this server "
                                          "fetches no URL and reads no path")
                    images.append(url)
                    parts.append({"type": "image"})
                else:
                    return error(400, f"a content part of type {str(part.get('type'))[:20]!r}: text and image_url are read")
            prompt.append({"role": m.role, "content": parts})
        try:
            text, prompt_tokens, new_tokens = served.look(body.model, images, prompt, body.budget(), body.temperature, body.top_p)
        except InputError as exc:
            return error(400, str(exc))
        text, stopped = _cut(text, body.stop)
        finish = "stop" if stopped or new_tokens < body.budget() else "length"
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if body.stream:
            def events():
                for delta, reason in (({"role": "assistant", "content": text}, None), ({}, finish)):
                    yield _sse({"id": ident, "object": "chat.completion.chunk", "created": created, "model": body.model,
                                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]})
                yield "data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": new_tokens, "total_tokens": prompt_tokens + new_tokens}
        return {"id": ident, "object": "chat.completion", "created": created, "model": body.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}], "usage": usage}

    @app.post("/v1/chat/completions")
    def chat_completions(body: ChatRequest):
        if served.speech:
            return error(400, "this model transcribes audio: POST /v1/audio/transcriptions with a WAV file")
        if served.classifier:
            return error(400, "this model is a classifier: POST /classify with {\"model\": ..., \"input\": [texts]}")
        if served.vision:
            return look(body)
        if any(isinstance(m.content, list) and any(p.get("type") != "text" for p in m.content) for m in body.messages):
            return error(400, "this model reads text only: its messages cannot hold images or other non-text parts")
        if not getattr(served.tokenizer, "chat_template", None):
            return error(400, "this model has no chat template: use /v1/completions with a prompt")
        turns = [{"role": m.role, "content": m.content if isinstance(m.content, str) else "".join(str(p.get("text", "")) for p in m.content)}
                 for m in body.messages]
        prompt = served.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return answer(body, prompt, chat=True)

    @app.post("/v1/completions")
    def completions(body: CompletionRequest):
        if served.speech:
            return error(400, "this model transcribes audio: POST /v1/audio/transcriptions with a WAV file")
        if served.classifier:
            return error(400, "this model is a classifier: POST /classify with {\"model\": ..., \"input\": [texts]}")
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            return error(400, "prompt: one prompt per request")
        return answer(body, prompts[0], chat=False)

    return app


@functools.lru_cache(maxsize=1)
def too_large_class():
    """The 413 the body counter raises while the route reads the body (FastAPI passes HTTP errors through); made on
    first use, as starlette is imported with the server only."""
    from starlette.exceptions import HTTPException

    class TooLarge(HTTPException):
        def __init__(self):
            super().__init__(413, "request body too large")

    return TooLarge


class Guard:
    """The server's limits as ASGI middleware, so that they hold for every request however it is sent: the API key
    (401), the body size counted as its bytes arrive (chunked bodies too; 413), and the requests in flight, a stream
    counted until its last byte is sent (429 past `max_concurrency`)."""

    def __init__(self, app, max_concurrency: int, max_bytes: int, api_key: str | None, error):
        self.app, self.max_concurrency, self.max_bytes, self.api_key, self.error = app, max_concurrency, max_bytes, api_key, error
        self.active, self.gate = 0, threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key is not None:
            import hmac

            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                return await self.error(401, "a valid API key is needed: Authorization: Bearer KEY", "authentication_error",
                                        "invalid_api_key")(scope, receive, send)
        size = headers.get("content-length", "")
        if size.isdigit() and int(size) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        if scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        with self.gate:
            if self.active >= self.max_concurrency:
                response = self.error(429, f"{self.max_concurrency} requests are in flight: retry shortly", kind="rate_limit_error")
                response.headers["Retry-After"] = "1"
                return await response(scope, receive, send)
            self.active += 1
        state = {"received": 0, "started": False, "released": False}

        def release():
            with self.gate:
                if not state["released"]:
                    state["released"] = True
                    self.active -= 1

        async def counted_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    raise too_large()
            return message

        async def counted_send(message):
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()  # the last byte of the answer (a stream's too) is out

        too_large = too_large_class()
        try:
            await self.app(scope, counted_receive, counted_send)
        except too_large:
            if not state["started"]:
                await self._too_large(scope, receive, send)
        finally:
            release()

    async def _too_large(self, scope, receive, send):
        return await self.error(413, f"request body over {self.max_bytes // 1024} KB", code="request_too_large")(scope, receive, send)


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"
