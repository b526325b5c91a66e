"""A vendor's fine-tuning job (a `lora_adapters` recipe with a `vendor` block) on an OpenAI-compatible endpoint.

The data becomes the vendor's chat JSONL (`{"messages": [{"role", "content"}, ...]}`), checked as the vendor checks it
(roles, a final assistant turn, the minimum example count, tokens per example), and is written into the run with the
exact calls that start the job. Only `adaptkit run --start-job` sends anything: POST /files (purpose fine-tune) for each
file, then POST /fine_tuning/jobs; the job's id and status go to job.json. The key comes from backend.api_key_env
and is never written.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from adaptkit._files import write_atomic
from adaptkit.errors import AdaptkitError, InputError
from adaptkit.methods.base import RunOptions, RunResult
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Splits

ROLES = ("system", "user", "assistant")
CHARS_PER_TOKEN = 4  # no vendor tokenizer offline: about 4 characters a token for English (tiktoken's cl100k/o200k average)
FILES = {"train": "vendor_train.jsonl", "eval": "vendor_eval.jsonl"}


def to_chat(recipe: Recipe, row: dict) -> dict:
    """One row as the vendor's chat example: messages as given, prompt/response, or text/label for a classifier."""
    d, system = recipe.data, recipe.vendor.system
    if recipe.task == "sequence_classification":
        turns = [{"role": "user", "content": str(row[d.text_column])}, {"role": "assistant", "content": str(row[d.label_column])}]
    elif d.messages_column:
        turns = [{"role": m.get("role"), "content": m.get("content")} for m in row[d.messages_column]]
    else:
        turns = [{"role": "user", "content": row[d.prompt_column]}, {"role": "assistant", "content": row[d.response_column]}]
    if system and not (turns and turns[0]["role"] == "system"):
        turns = [{"role": "system", "content": system}] + turns
    return {"messages": turns}


def check_examples(recipe: Recipe, examples: list[dict], where: str) -> int:
    """The vendor's own checks, before anything is sent: returns the estimated tokens of the file."""
    limit, total = recipe.vendor.max_example_tokens, 0
    for number, example in enumerate(examples, 1):
        turns = example["messages"]
        bad = next((t for t in turns if t.get("role") not in ROLES), None)
        if bad is not None:
            raise InputError(f"{where}: row {number}: role {str(bad.get('role'))[:20]!r} is not one of {', '.join(ROLES)}")
        if any(not isinstance(t.get("content"), str) or not t["content"].strip() for t in turns):
            raise InputError(f"{where}: row {number}: a message has no text")
        if turns[-1]["role"] != "assistant":
            raise InputError(f"{where}: row {number}: the last message must be the assistant's (it is what the model learns)")
        tokens = sum(len(t["content"]) for t in turns) // CHARS_PER_TOKEN + 4 * len(turns)
        if tokens > limit:
            raise InputError(f"{where}: row {number}: about {tokens:,} tokens, over the vendor's {limit:,} per example "
                             "(vendor.max_example_tokens): shorten or drop it")
        total += tokens
    return total


def job_request(recipe: Recipe, train_id: str, eval_id: str | None) -> dict:
    """The body of POST /fine_tuning/jobs: the supervised method with its hyperparameters."""
    v = recipe.vendor
    body = {"model": recipe.backend.model or recipe.model, "training_file": train_id,
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": v.epochs or "auto"}}}}
    if eval_id:
        body["validation_file"] = eval_id
    if v.suffix:
        body["suffix"] = v.suffix
    if v.seed is not None:
        body["seed"] = v.seed
    return body


def _calls(recipe: Recipe, files: dict[str, Path]) -> str:
    """The exact calls that start the job, for the user who starts it by hand."""
    base, key = recipe.backend.base_url.rstrip("/"), recipe.backend.api_key_env or "OPENAI_API_KEY"
    lines = ["# Upload each file (note each returned id), then start the job:"]
    for name, path in files.items():
        lines.append(f"curl -sS {shlex.quote(base + '/files')} -H \"Authorization: Bearer ${key}\" -F purpose=fine-tune "
                     f"-F file=@{shlex.quote(str(path))}   # {name}")
    body = job_request(recipe, "TRAIN_FILE_ID", "EVAL_FILE_ID" if "eval" in files else None)
    lines.append(f"curl -sS {shlex.quote(base + '/fine_tuning/jobs')} -H \"Authorization: Bearer ${key}\" "
                 f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}")
    lines.append(f"# or: adaptkit run RECIPE --start-job (with {key} set); then poll GET {base}/fine_tuning/jobs/JOB_ID")
    return "\n".join(lines) + "\n"


class _Vendor:
    """The two calls, over httpx; each error is one line naming the endpoint and what it said."""

    def __init__(self, recipe: Recipe):
        import httpx

        b = recipe.backend
        self.base = b.base_url.rstrip("/")
        if not self.base.startswith(("http://", "https://")):
            raise InputError(f"backend.base_url must start with http:// or https://, got {b.base_url[:80]!r}")
        name = b.api_key_env or "OPENAI_API_KEY"
        key = os.environ.get(name)
        if not key:
            raise InputError(f"--start-job needs the API key in the environment variable {name} (backend.api_key_env); it is not set")
        self.client = httpx.Client(timeout=httpx.Timeout(b.timeout_s), follow_redirects=False,
                                   headers={"Authorization": f"Bearer {key}"}, verify=not self.base.startswith("http://"))

    def _json(self, response, what: str) -> dict:
        if response.status_code >= 400:
            try:
                message = response.json().get("error", {}).get("message") or response.text
            except ValueError:
                message = response.text
            raise AdaptkitError(f"{what}: the vendor answered {response.status_code}: {' '.join(str(message).split())[:200]}")
        try:
            return response.json()
        except ValueError:
            raise AdaptkitError(f"{what}: the vendor's answer is not JSON") from None

    def upload(self, path: Path) -> str:
        import httpx

        try:
            with open(path, "rb") as handle:
                reply = self.client.post(self.base + "/files", data={"purpose": "fine-tune"},
                                         files={"file": (path.name, handle, "application/jsonl")})
        except httpx.HTTPError as exc:
            raise AdaptkitError(f"uploading {path.name} to {self.base}/files failed: {exc.__class__.__name__}") from None
        file_id = self._json(reply, f"uploading {path.name}").get("id")
        if not file_id:
            raise AdaptkitError(f"uploading {path.name}: the vendor's answer has no file id")
        return file_id

    def start(self, body: dict) -> dict:
        import httpx

        try:
            reply = self.client.post(self.base + "/fine_tuning/jobs", json=body)
        except httpx.HTTPError as exc:
            raise AdaptkitError(f"starting the job at {self.base}/fine_tuning/jobs failed: {exc.__class__.__name__}") from None
        return self._json(reply, "starting the fine-tuning job")


def run_vendor_job(recipe: Recipe, splits: Splits, options: RunOptions) -> RunResult:
    """Convert and check the data, write it with the calls; with options.start_job, upload it and start the job."""
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    parts = {"train": splits.train, **({"eval": splits.eval} if splits.eval else {})}
    if len(splits.train) < recipe.vendor.min_examples:
        raise InputError(f"data.train: {len(splits.train)} examples; the vendor needs at least {recipe.vendor.min_examples} "
                         "(vendor.min_examples)")
    files, tokens = {}, {}
    for name, rows in parts.items():
        examples = [to_chat(recipe, row) for row in rows]
        tokens[name] = check_examples(recipe, examples, f"data.{name}")
        files[name] = out / FILES[name]
        write_atomic(files[name], "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples))
    write_atomic(out / "start_job.sh", _calls(recipe, {name: Path(recipe.output_dir) / FILES[name] for name in files}))
    epochs = recipe.vendor.epochs
    job = {"status": "not started (adaptkit run --start-job starts it)", "endpoint": recipe.backend.base_url,
           "model": recipe.backend.model or recipe.model, "train_examples": len(splits.train), "eval_examples": len(splits.eval),
           "train_tokens_estimate": tokens["train"],
           "billed_tokens_estimate": tokens["train"] * (epochs or 3)}  # tokens x epochs (auto: about 3 at this size)
    if options.start_job:
        vendor = _Vendor(recipe)
        ids = {name: vendor.upload(path) for name, path in files.items()}
        reply = vendor.start(job_request(recipe, ids["train"], ids.get("eval")))
        job.update(status=reply.get("status", "created"), id=reply.get("id"), files=ids)
        write_atomic(out / "job.json", json.dumps(reply, indent=2) + "\n")
    metrics = {"method": recipe.method, "task": recipe.task, "train": {}, "eval": {}, "vendor_job": job}
    artifacts = [FILES[name] for name in files] + ["start_job.sh"] + (["job.json"] if options.start_job else [])
    return RunResult(metrics, [], artifacts)
