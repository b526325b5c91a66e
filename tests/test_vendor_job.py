"""A vendor fine-tuning job: the data as the vendor's chat JSONL, checked; nothing sent without --start-job; with it,
the files and the job go to an OpenAI-compatible endpoint (a local server on 127.0.0.1 here)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def vendor():
    """A fake fine-tuning endpoint: records what it is sent, answers like the vendor, stops itself."""
    seen = {"files": [], "jobs": [], "auth": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen["auth"].append(self.headers.get("Authorization"))
            if self.path == "/v1/files":
                seen["files"].append(body)
                reply = {"id": f"file-{len(seen['files'])}", "object": "file", "purpose": "fine-tune"}
            elif self.path == "/v1/fine_tuning/jobs":
                job = json.loads(body)
                seen["jobs"].append(job)
                if job.get("model") == "no-such-model":
                    return self._send(400, {"error": {"message": "model no-such-model is not available for fine-tuning"}})
                reply = {"id": "ftjob-1", "object": "fine_tuning.job", "status": "validating_files", "model": job["model"]}
            else:
                return self._send(404, {"error": {"message": "not found"}})
            self._send(200, reply)

        def _send(self, code, payload):
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen["url"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield seen
    server.shutdown()
    server.server_close()


def test_without_the_flag_nothing_is_sent(invoke, tmp_path, vendor):
    out = tmp_path / "job"
    result = invoke("run", "vendor_sft", f"backend.base_url={vendor['url']}", f"output_dir={out}", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["vendor_job"]["status"].startswith("not started") and metrics["vendor_job"]["train_examples"] == 320
    assert not vendor["files"] and not vendor["jobs"] and not (out / "job.json").exists()
    rows = [json.loads(line) for line in (out / "vendor_train.jsonl").read_text().splitlines()]
    assert len(rows) == 320 and [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    calls = (out / "start_job.sh").read_text()
    assert f"{vendor['url']}/fine_tuning/jobs" in calls and '"n_epochs": 3' in calls and "$OPENAI_API_KEY" in calls
    assert str(out / "vendor_train.jsonl") in calls


def test_start_job_uploads_and_starts_it(invoke, tmp_path, vendor, monkeypatch):
    monkeypatch.setenv("MY_VENDOR_KEY", "sk-test-123")
    out = tmp_path / "job"
    result = invoke("run", "vendor_sft", f"backend.base_url={vendor['url']}", "backend.api_key_env=MY_VENDOR_KEY", f"output_dir={out}",
                    "--start-job", "--json")
    assert result.exit_code == 0, result.output
    assert len(vendor["files"]) == 2 and b"fine-tune" in vendor["files"][0] and b'"messages"' in vendor["files"][0]
    job = vendor["jobs"][0]
    assert job == {"model": "gpt-4o-mini-2024-07-18", "training_file": "file-1", "validation_file": "file-2", "suffix": "support-replies",
                   "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}}
    assert set(vendor["auth"]) == {"Bearer sk-test-123"}
    assert json.loads((out / "job.json").read_text())["id"] == "ftjob-1"
    assert json.loads(result.stdout)["vendor_job"]["id"] == "ftjob-1"
    assert "sk-test-123" not in "".join(p.read_text() for p in out.iterdir() if p.is_file())  # the key is never written


@pytest.mark.parametrize("overrides, env, words", [
    ([], {}, "environment variable OPENAI_API_KEY"),
    (["backend.model=no-such-model"], {"OPENAI_API_KEY": "k"}, "the vendor answered 400: model no-such-model is not available"),
])
def test_start_job_failures_are_one_line_and_leave_nothing(invoke, tmp_path, vendor, monkeypatch, overrides, env, words):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "job"
    result = invoke("run", "vendor_sft", f"backend.base_url={vendor['url']}", f"output_dir={out}", *overrides, "--start-job")
    assert result.exit_code != 0 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("rows, overrides, words", [
    ([{"prompt": "p", "response": "r"}] * 5, [], "the vendor needs at least 10"),
    ([{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}]}] * 12, ["data.messages_column=messages"],
     "role 'bot' is not one of"),
    ([{"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "yo"}]}] * 12, ["data.messages_column=messages"],
     "the last message must be the assistant's"),
    ([{"prompt": "word " * 400, "response": "r"}] * 12, ["vendor.max_example_tokens=100"], "over the vendor's 100 per example"),
])
def test_the_vendors_checks_run_before_anything_is_sent(invoke, tmp_path, monkeypatch, rows, overrides, words):
    monkeypatch.chdir(tmp_path)
    _jsonl(tmp_path / "d.jsonl", rows)
    result = invoke("run", "vendor_sft", "data.train=d.jsonl", "data.eval=", "output_dir=out", *overrides)
    assert result.exit_code == 2 and words in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_classifier_becomes_chat_examples(invoke, tmp_path):
    out = tmp_path / "cls"
    result = invoke("run", "vendor_sft", "task=sequence_classification", "data.train=examples/data/support_tickets_train.jsonl",
                    "data.eval=", f"output_dir={out}", "vendor.system=Route the ticket to one queue.")
    assert result.exit_code == 0, result.output
    first = json.loads((out / "vendor_train.jsonl").read_text().splitlines()[0])["messages"]
    assert first[0]["role"] == "system" and first[-1] == {"role": "assistant", "content": "account_access"}


@pytest.mark.parametrize("overrides, words", [
    (["backend.kind=local"], "set backend.kind=openai"),
    (["lora.r=8"], "exactly one of the blocks"),
])
def test_a_vendor_recipe_is_checked(invoke, overrides, words):
    result = invoke("run", "vendor_sft", *overrides, "--dry-run")
    assert result.exit_code == 2 and words in result.stderr, result.stderr


def test_flags_that_do_not_apply_are_refused(invoke):
    assert "this recipe has no `vendor` block" in invoke("run", "lora_cls", "--start-job").stderr
    assert "--resume and --num-processes do not apply" in invoke("run", "vendor_sft", "--num-processes", "2").stderr
    assert "no training script" in invoke("export", "vendor_sft").stderr


def test_advise_emits_a_vendor_job_for_a_closed_model_the_vendor_tunes(invoke, tmp_path):
    from adaptkit.advisor.engine import advise
    from adaptkit.advisor.profile import build_profile
    from adaptkit.recipe.emit import recipe_for

    advice = advise(build_profile({"task": "chat", "goal": "behavior", "weight_access": "closed_api_ft", "labeled_examples": 2000,
                                   "api_model": "gpt-4.1-mini-2025-04-14", "api_key_env": "ACME_KEY"}))
    recipe, notes = recipe_for(advice, method="lora_adapters")
    assert recipe["vendor"]["epochs"] == 3 and "lora" not in recipe and recipe["model"] == "gpt-4.1-mini-2025-04-14"
    assert recipe["backend"]["kind"] == "openai" and recipe["backend"]["api_key_env"] == "ACME_KEY"
    assert any("--start-job" in n for n in notes) and not any(n.startswith("model:") for n in notes)


def test_a_closed_alignment_goal_never_gets_a_local_preference_recipe():
    from adaptkit.advisor.engine import advise
    from adaptkit.advisor.profile import build_profile
    from adaptkit.recipe.emit import recipe_for

    advice = advise(build_profile({"task": "chat", "goal": "alignment", "weight_access": "closed_api_ft", "preference_pairs": 3000,
                                   "vendor_offers_preference_tuning": True, "labeled_examples": 500}))
    recipe, _ = recipe_for(advice)
    assert recipe["method"] != "dpo" and ("vendor" in recipe or recipe["backend"]["kind"] == "openai")
