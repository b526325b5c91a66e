"""Nothing lost, nothing run without consent: each defect of the safety audit reproduced, then refused or fixed.

Output folders and Ctrl-C, code a recipe names, exported scripts, the endpoint client, and the RAG index.
Malformed input across every command lives in test_hostile.py.
"""

import ast
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent
QUICK = ["training.max_steps=1", "data.max_rows=16", "training.batch_size=8"]
ENV = {**os.environ, "ADAPTKIT_FAKE_GPUS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def refused(result, words):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.output, result.stderr


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p) if p.is_symlink() else None)
            for p in sorted(folder.rglob("*"))}


def earlier_run(folder: Path, marker: bool = True) -> Path:
    """An earlier run's folder, made by hand."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text('{"method": "lora_adapters", "eval": {"accuracy": 0.9}}\n')
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    if marker:
        (folder / ".adaptkit-run").write_text("{}\n")
    return folder


# ------------------------------------------------------------------------------------------ output folders


@pytest.fixture
def no_deleting(monkeypatch):
    """Any attempt to delete or move a file fails loudly: a regression in the guards then breaks the test, not the machine."""
    import shutil

    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to delete or move {args[:1]}")

    for owner, name in ((shutil, "rmtree"), (os, "unlink"), (os, "remove"), (os, "rmdir"), (os, "rename"), (os, "replace"), (Path, "unlink")):
        monkeypatch.setattr(owner, name, refuse)


def test_overwrite_never_replaces_the_root_folder(no_deleting):
    """Checked on the guard itself: a test must never hand the real / to a command that might, if broken, empty it
    (running this audit's reproduction against the code before the fix deleted /etc on the machine it ran on)."""
    from adaptkit.errors import InputError
    from adaptkit.rundir import check_replaceable

    with pytest.raises(InputError, match="never replaces the root folder"):
        check_replaceable(Path("/"), [])


@pytest.mark.parametrize("case", ["home", "cwd", "parent of cwd", "holds the data", "not adaptkit's", "symlink"])
def test_overwrite_never_replaces_what_adaptkit_did_not_make(invoke, tmp_path, monkeypatch, case):
    home, work = earlier_run(tmp_path / "home"), earlier_run(tmp_path / "work")
    (work / "sub").mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work / "sub" if case == "parent of cwd" else work)
    data = earlier_run(tmp_path / "data")
    (data / "train.jsonl").write_text((ROOT / "examples/data/support_tickets_train.jsonl").read_text())
    earlier_run(tmp_path / "plain", marker=False)
    (tmp_path / "link").symlink_to(tmp_path / "data")
    target, extra, words = {
        "home": ("~/", [], "your home folder"), "cwd": (".", [], "working folder"),
        "parent of cwd": ("..", [], "working folder or a folder that holds it"),
        "holds the data": (str(data), [f"data.train={data / 'train.jsonl'}"], "holds this recipe's input"),
        "not adaptkit's": (str(tmp_path / "plain"), [], "replaces only folders adaptkit created"),
        "symlink": (str(tmp_path / "link"), [], "symbolic link"),
    }[case]
    before = snapshot(tmp_path)
    refused(invoke("run", "lora_cls", f"output_dir={target}", *extra, *QUICK, "--overwrite"), words)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("override, words", [
    ("training.precision=bf16-mixed", "needs a CUDA GPU"),  # a check inside the runner, after the folder was prepared
    ("model=./no-such-model", "model: no such folder"),
])
def test_a_failed_replacement_leaves_the_previous_run_as_it_was(invoke, tmp_path, override, words):
    out = earlier_run(tmp_path / "out")
    before = snapshot(tmp_path)
    refused(invoke("run", "lora_cls", f"output_dir={out}", override, *QUICK, "--overwrite"), words)
    assert snapshot(tmp_path) == before  # the earlier run, and no staging folder left beside it


def test_a_failed_fresh_run_leaves_nothing(invoke, tmp_path):
    refused(invoke("run", "lora_cls", f"output_dir={tmp_path / 'a' / 'b'}", "training.precision=bf16-mixed", *QUICK), "CUDA")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_swaps_in_the_new_run_and_never_follows_links(invoke, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not adaptkit's")
    out = earlier_run(tmp_path / "out")
    (out / "to_folder").symlink_to(outside)
    (out / "to_file").symlink_to(outside / "keep.txt")
    result = invoke("run", "lora_cls", f"output_dir={out}", *QUICK, "--overwrite", "--json")
    assert result.exit_code == 0, result.output
    assert (outside / "keep.txt").read_text() == "not adaptkit's"
    assert not (out / "to_folder").exists() and not (out / "adapter_model.safetensors").read_bytes() == b"weights"
    assert json.loads((out / "metrics.json").read_text()) == json.loads(result.stdout)
    assert (out / ".adaptkit-run").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["out", "outside"]
    mode = (out / "metrics.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask(), oct(mode)  # the umask decides, not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_output_dir_tilde_expands(invoke, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    report = json.loads(invoke("run", "lora_cls", "output_dir=~/runs/mine", "--dry-run", "--json").stdout)
    assert yaml.safe_load(report["recipe"])["output_dir"] == str(tmp_path / "runs" / "mine")


@pytest.mark.parametrize("where, words", [("/proc/adaptkit-test", "system folder"), ("FILE/below", "which is a file")])
def test_output_dir_where_no_run_belongs(invoke, tmp_path, where, words):
    (tmp_path / "FILE").write_text("x")
    refused(invoke("run", "lora_cls", f"output_dir={where.replace('FILE', str(tmp_path / 'FILE'))}", *QUICK), words)


def test_dry_run_warns_that_the_real_run_will_refuse(invoke, tmp_path):
    earlier_run(tmp_path / "plain", marker=False)
    report = json.loads(invoke("run", "lora_cls", f"output_dir={tmp_path / 'plain'}", "--dry-run", "--json").stdout)
    assert "not an adaptkit run" in report["output"]


def test_the_interrupt_callback_saves_without_evaluating():
    pytest.importorskip("transformers")
    from transformers import TrainerControl

    from adaptkit.runners.core import callbacks

    stop = {"stop": True}
    callback = callbacks(stop, Path(os.devnull))[0]
    control = TrainerControl(should_evaluate=True, should_save=False)
    callback.on_step_end(None, None, control)
    assert (control.should_save, control.should_evaluate, control.should_training_stop) == (True, False, True)
    control = TrainerControl(should_evaluate=True, should_save=True)  # what the flow callback sets at the epoch's end
    callback.on_epoch_end(None, None, control)
    assert (control.should_save, control.should_evaluate) == (False, False)


def test_interrupted_replacement_keeps_the_old_run_until_the_resumed_one_finishes(tmp_path):
    out = tmp_path / "run one"  # a space: the printed resume command must be quoted
    args = ["lora_cls", f"output_dir={out}", "data.max_rows=64", "training.batch_size=8", "training.logging_steps=1"]
    first = subprocess.run([sys.executable, "-m", "adaptkit", "run", *args, "training.max_steps=2"], capture_output=True, text=True, env=ENV)
    assert first.returncode == 0, first.stderr
    before = (out / "metrics.json").read_text()
    pending = tmp_path / ".run one.adaptkit-pending"
    process = subprocess.Popen([sys.executable, "-m", "adaptkit", "run", *args, "training.max_steps=400", "training.eval_every=1",
                                "--overwrite"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    log = pending / "train_log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # a second Ctrl-C while saving must not lose the checkpoint
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "nothing was written" not in stderr
    assert f"resume with: adaptkit run lora_cls 'output_dir={out}'" in stderr and "stay until the resumed run finishes" in stderr
    assert (out / "metrics.json").read_text() == before  # the previous results are untouched
    checkpoints = sorted(pending.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    step = int(checkpoints[-1].name.split("-")[1])
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert not [r for r in rows if r["step"] == step and "eval_loss" in r], "evaluated before saving"
    resumed = subprocess.run([sys.executable, "-m", "adaptkit", "run", *args, f"training.max_steps={step + 2}", "--resume", "--json"],
                             capture_output=True, text=True, env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "metrics.json").read_text()) == json.loads(resumed.stdout) and not pending.exists()
    assert max(json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()) == step + 2


# ------------------------------------------------------------------------------------------ code a recipe names


EVIL = '''
import os
from pathlib import Path
Path(os.environ["ADAPTKIT_IMPORTED"]).write_text("imported")


def refund(order: str) -> str:
    """Refund an order.

    Args:
        order: the order number
    """
    return "refunded"


def score(prediction, expected):
    return 1.0
'''


@pytest.fixture
def evil(tmp_path, monkeypatch):
    (tmp_path / "evil.py").write_text(EVIL)
    marker = tmp_path / "imported"
    monkeypatch.setenv("ADAPTKIT_IMPORTED", str(marker))
    return tmp_path / "evil.py", marker


def tools_recipe(module):
    return ["tools.builtins=[]", f"tools.custom=[{{function: '{module}:refund'}}]", "backend.kind=openai",
            "backend.base_url=http://127.0.0.1:9/v1"]


def test_code_named_in_a_recipe_needs_consent(invoke, tmp_path, evil):
    module, marker = evil
    refused(invoke("run", "tool_use", *tools_recipe(module), f"output_dir={tmp_path / 'o'}"), "--allow-code")
    refused(invoke("run", "prompt_engineering", f"prompts.scorer={module}:score", f"output_dir={tmp_path / 'p'}"), "--allow-code")
    dry = invoke("run", "tool_use", *tools_recipe(module), "--dry-run", "--json")
    assert dry.exit_code == 0 and not marker.exists(), dry.output
    report = json.loads(dry.stdout)
    assert "not allowed" in report["code"][0] and any("not imported" in tool for tool in report["data"]["tools"])
    assert not marker.exists() and not (tmp_path / "o").exists()
    allowed = json.loads(invoke("run", "tool_use", *tools_recipe(module), "--dry-run", "--json", "--allow-code").stdout)
    assert marker.exists() and "allowed by --allow-code" in allowed["code"][0]
    assert allowed["data"]["state_changing"] == ["refund"]  # custom tools change state unless they say otherwise
    validate = invoke("recipes", "validate", "tool_use", *tools_recipe(module), "allow_code=true")
    assert validate.exit_code == 0 and "allowed by allow_code: true in the recipe" in validate.stdout


def test_the_working_folder_is_not_on_the_import_path(tmp_path, evil):
    (tmp_path / "evilmod.py").write_text(EVIL)
    marker = Path(os.environ["ADAPTKIT_IMPORTED"])
    done = subprocess.run([sys.executable, "-m", "adaptkit", "run", "tool_use", *tools_recipe("evilmod"), "--dry-run", "--allow-code"],
                          capture_output=True, text=True, cwd=tmp_path, env={**ENV, "ADAPTKIT_IMPORTED": str(marker)})
    assert done.returncode == 2 and "cannot import `evilmod`" in done.stderr and not marker.exists(), done.stderr


def test_trust_remote_code_is_reported(invoke):
    report = json.loads(invoke("run", "lora_cls", "trust_remote_code=true", "--dry-run", "--json").stdout)
    assert any("trust_remote_code" in line for line in report["code"])


# ------------------------------------------------------------------------------------------ exported scripts


HOSTILE = ['x"""; import os; os.system("touch PWNED"); """', "x'''\nimport os\n'''", "__ARGS__", "a\\\"b\nc", "x\"; import os #"]


def shape(code: str) -> str:
    """The script's syntax tree with every string constant blanked: the same shape means no injected code."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)


@pytest.mark.parametrize("recipe", ["lora_cls", "lora_sft", "rlhf"])
def test_exported_scripts_hold_hostile_strings_as_data(invoke, recipe):
    benign = invoke("export", recipe, "model=org/model").stdout
    for text in HOSTILE:
        result = invoke("export", recipe, f"model={text}", f"output_dir={text}")
        assert result.exit_code == 0, result.output
        assert shape(result.stdout) == shape(benign), text
        assert "PWNED" not in "".join(n.id for n in ast.walk(ast.parse(result.stdout)) if isinstance(n, ast.Name))


def test_config_comments_cannot_inject_keys(invoke, tmp_path):
    trl = invoke("export", "lora_sft", "data.messages_column=x\ninjected: 1", "--format", "trl")
    assert trl.exit_code == 0 and "injected" not in yaml.safe_load(trl.stdout)
    recipe = tmp_path / "a\ninjected: 1.yaml"
    recipe.write_text((ROOT / "recipes" / "lora_cls.yaml").read_text())
    files = tmp_path / "cfg"
    assert invoke("export", recipe, "--format", "accelerate", "-o", files).exit_code == 0
    for config in files.glob("*.yaml"):
        assert "injected" not in yaml.safe_load(config.read_text()), config.name


# ------------------------------------------------------------------------------------------ the endpoint client


class Endpoint(BaseHTTPRequestHandler):
    """A test endpoint whose behaviour each test sets: handler(self) per request."""

    handler = None
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Endpoint.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "method": "POST", "body": body})
        type(self).handler(self)

    def do_GET(self):  # noqa: N802
        Endpoint.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "method": "GET"})
        self.send_response(200)
        self.end_headers()

    def reply(self, status=200, payload=None, headers=()):
        data = json.dumps(payload if payload is not None else {"choices": [{"message": {"content": "ok"}}]}).encode()
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoints():
    servers = []

    def start(handler):
        server = ThreadingHTTPServer(("127.0.0.1", 0), type("E", (Endpoint,), {"handler": staticmethod(handler)}))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    Endpoint.seen = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def client(url, **kw):
    from adaptkit.runners.backends import OpenAIBackend

    return OpenAIBackend(url, "m", backoff_s=0.01, **{"timeout_s": 5, "max_retries": 2, **kw})


def ask(backend):
    return backend.chat([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("status", [302, 303, 307, 308])
def test_credentials_never_follow_a_redirect(endpoints, monkeypatch, status):
    from adaptkit.runners.backends import BackendError

    other = endpoints(lambda h: h.reply())
    first = endpoints(lambda h: h.reply(status, {}, [("Location", other + "/chat/completions")]))
    monkeypatch.setenv("SECRET_KEY_ENV", "sk-secret")
    with pytest.raises(BackendError, match="redirect"):
        ask(client(first, api_key_env="SECRET_KEY_ENV"))
    assert len(Endpoint.seen) == 1 and Endpoint.seen[0]["method"] == "POST"  # nothing reached the other origin


def test_timeout_bounds_the_whole_request(endpoints):
    from adaptkit.runners.backends import BackendError

    def trickle(h):
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        for _ in range(40):
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.1)

    url = endpoints(trickle)
    started = time.monotonic()
    with pytest.raises(BackendError, match="no answer within 0.5 s"):
        ask(client(url, timeout_s=0.5, max_retries=0))
    assert time.monotonic() - started < 1.5


def test_a_dropped_connection_is_retried(endpoints):
    state = {"n": 0}

    def flaky(h):
        state["n"] += 1
        if state["n"] == 1:  # promise 100 bytes, send 5, hang up
            h.send_response(200)
            h.send_header("Content-Length", "100")
            h.end_headers()
            h.wfile.write(b'{"cho')
            h.wfile.flush()
            h.close_connection = True
            return
        h.reply()

    assert ask(client(endpoints(flaky)))["content"] == "ok" and state["n"] == 2


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_nonsense_retry_after_is_ignored(endpoints, value):
    state = {"n": 0}

    def busy_once(h):
        state["n"] += 1
        h.reply(429, {}, [("Retry-After", value)]) if state["n"] == 1 else h.reply()

    started = time.monotonic()
    assert ask(client(endpoints(busy_once)))["content"] == "ok" and time.monotonic() - started < 2


def test_a_reply_without_choices_is_an_error_and_is_not_cached(endpoints, tmp_path):
    from adaptkit.runners.backends import BackendError

    state = {"n": 0}

    def empty_then_good(h):
        state["n"] += 1
        h.reply(200, {"error": "overloaded"}) if state["n"] == 1 else h.reply()

    backend = client(endpoints(empty_then_good), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(BackendError, match="no choices"):
        ask(backend)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []  # nothing kept (the folder waits for an answer)
    assert ask(backend)["content"] == "ok" and len(list((tmp_path / "cache").iterdir())) == 1


def test_concurrent_requests_for_one_cache_entry_do_not_race(endpoints, tmp_path):
    def slow(h):
        time.sleep(0.2)
        h.reply()

    backend = client(endpoints(slow), cache_dir=str(tmp_path / "cache"), concurrency=8)
    replies = backend.map(lambda _: ask(backend), range(8))
    assert all(r["content"] == "ok" for r in replies)
    assert len(Endpoint.seen) == 1 and [p.suffix for p in (tmp_path / "cache").iterdir()] == [".json"]


# ------------------------------------------------------------------------------------------ the RAG index


def fake_embed(self, texts):
    """A deterministic stand-in for the embedding model: the mechanics, without loading MiniLM."""
    import numpy as np

    fake_embed.calls += 1
    rows = [np.frombuffer(__import__("hashlib").sha256(t.encode()).digest(), dtype=np.uint8)[:16].astype("float32") + 1 for t in texts]
    vectors = np.array(rows, dtype="float32").reshape(len(texts), 16)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True) if len(texts) else vectors


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    import shutil

    from adaptkit.methods.rag import index as rag_index
    from adaptkit.methods.rag import runner as rag

    monkeypatch.setattr(rag.Index, "embed", fake_embed)
    monkeypatch.setattr(rag.Index, "token_counts", lambda self, words: [1] * len(words))  # a token a word: no model loads
    monkeypatch.setattr(rag.Index, "input_limit", lambda self: 512)
    monkeypatch.setattr(rag_index, "BATCH_CHUNKS", 4)
    fake_embed.calls = 0
    folder = tmp_path / "docs"
    shutil.copytree(ROOT / "examples" / "rag" / "docs", folder)
    return folder


def test_an_interrupted_update_leaves_the_index_as_it_was_and_resumes(corpus, tmp_path, monkeypatch):
    from adaptkit.methods.rag import runner as rag

    index = rag.Index(tmp_path / "index", "m")
    index.ingest(corpus, 60, 15, 200)
    first = index.manifest
    for name in ("returns.md", "shipping.md", "warranty.md"):
        (corpus / name).write_text((corpus / name).read_text() + "\nUpdated policy text, with new words in it.\n")
    calls = {"n": 0}

    def dies_on_the_second_batch(self, texts):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return fake_embed(self, texts)

    monkeypatch.setattr(rag.Index, "embed", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        rag.Index(tmp_path / "index", "m").ingest(corpus, 60, 15, 200)
    survivor = rag.Index(tmp_path / "index", "m")
    assert survivor.load() is None and survivor.manifest == first  # still the whole previous index
    monkeypatch.setattr(rag.Index, "embed", fake_embed)
    fake_embed.calls = 0
    stats = rag.Index(tmp_path / "index", "m").ingest(corpus, 60, 15, 200)
    assert stats["embedded_files"] == 3 and stats["reused_files"] == 11
    assert fake_embed.calls == 1  # the file embedded before the interruption came from partial/, not the model
    assert not (tmp_path / "index" / "partial").exists() and sorted(p.name for p in (tmp_path / "index").iterdir()) == ["CURRENT", "v000002"]


def test_a_damaged_index_is_rebuilt_with_a_message(invoke, tmp_path):
    pytest.importorskip("sentence_transformers")
    import numpy as np

    args = [f"output_dir={tmp_path / 'rag'}", f"rag.index_dir={tmp_path / 'index'}", "--json", "--overwrite"]
    first = json.loads(invoke("run", "rag", *args).stdout)
    version = tmp_path / "index" / (tmp_path / "index" / "CURRENT").read_text().strip()
    vectors = np.load(version / "embeddings.npy")
    np.save(version / "embeddings.npy", vectors[::-1].copy())  # stale vectors by position: what a torn update left
    second = json.loads(invoke("run", "rag", *args).stdout)
    assert "do not match its manifest" in second["index"]["rebuilt"]
    assert second["eval"]["recall_at_k"] == first["eval"]["recall_at_k"] >= 0.9


def test_ingest_skips_links_out_of_the_corpus_and_special_files(corpus, tmp_path):
    from adaptkit.methods.rag import runner as rag

    secret = tmp_path / "secret.txt"
    secret.write_text("API_KEY=sk-never-index-me")
    (corpus / "env.txt").symlink_to(secret)
    (corpus / "proc.txt").symlink_to("/proc/self/environ")
    (corpus / "elsewhere").symlink_to(tmp_path)
    os.mkfifo(corpus / "pipe.txt")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (corpus / "inside.md").symlink_to(corpus / "returns.md")  # a link that stays inside is fine
    index = rag.Index(tmp_path / "index", "m")
    stats = index.ingest(corpus, 60, 15, 200)
    assert not [c for c in index.chunks if "sk-never-index-me" in c["text"] or "PATH=" in c["text"]]
    skipped = "\n".join(stats["skipped"])
    for name in ("env.txt", "proc.txt", "elsewhere", "pipe.txt", "broken.pdf"):
        assert name in skipped, (name, skipped)
    assert "inside.md" in {c["source"] for c in index.chunks}


def test_ingest_has_a_size_cap_and_reports_progress(corpus, tmp_path):
    from adaptkit.errors import InputError
    from adaptkit.methods.rag import runner as rag

    with pytest.raises(InputError, match="rag.max_corpus_mb=0.001"):
        rag.Index(tmp_path / "index", "m").ingest(corpus, 60, 15, 0.001)
    seen = []
    rag.Index(tmp_path / "index", "m").ingest(corpus, 60, 15, 200, progress=lambda done, total: seen.append((done, total)))
    assert len(seen) > 1 and seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_confirmations_are_asked_one_at_a_time_for_the_exact_call(invoke, tmp_path, endpoints, monkeypatch):
    import click

    import adaptkit.cli.run as run_cli

    (tmp_path / "shop.py").write_text('''
import os


def refund(order: str) -> str:
    """Refund an order.

    Args:
        order: the order number
    """
    with open(os.environ["REFUNDS"], "a") as handle:
        handle.write(order + "\\n")
    return "refunded " + order
''')
    monkeypatch.setenv("REFUNDS", str(tmp_path / "refunds.txt"))
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"question": f"Refund order #{n}.", "answer": "refunded"}) + "\n" for n in range(1, 5)))

    def model(h):
        body = json.loads(Endpoint.seen[-1]["body"])
        last = body["messages"][-1]
        if last["role"] == "tool":
            return h.reply(200, {"choices": [{"message": {"content": last["content"]}}]})
        order = last["content"].split("#")[1].rstrip(".")
        call = {"id": "c", "type": "function", "function": {"name": "refund", "arguments": json.dumps({"order": f"#{order}"})}}
        h.reply(200, {"choices": [{"message": {"content": None, "tool_calls": [call]}}]})

    asked, active = [], {"now": 0, "most": 0}

    def confirm(text, **kwargs):
        active["now"] += 1
        active["most"] = max(active["most"], active["now"])
        time.sleep(0.05)
        active["now"] -= 1
        asked.append(text)
        return False

    monkeypatch.setattr(run_cli, "_terminal", lambda: True)
    monkeypatch.setattr(click, "confirm", confirm)
    result = invoke("run", "tool_use", "tools.builtins=[]", f"tools.custom=[{{function: '{tmp_path / 'shop.py'}:refund'}}]",
                    "tools.confirm_changes=true", "backend.kind=openai", f"backend.base_url={endpoints(model)}",
                    "backend.concurrency=4", f"data.eval={tasks}", f"output_dir={tmp_path / 'out'}", "--allow-code", "--json")
    assert result.exit_code == 0, result.output
    assert len(asked) == 4 and active["most"] == 1  # four questions, never two at once
    for n in range(1, 5):
        assert f'refund({{"order": "#{n}"}})' in result.stderr  # each call shown in full before its question
    assert not (tmp_path / "refunds.txt").exists() and json.loads(result.stdout)["eval"]["refused_calls"] == 4


def test_a_broken_certificate_setting_is_a_clear_error(monkeypatch):
    from adaptkit.errors import InputError

    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    with pytest.raises(InputError, match="SSL_CERT_FILE"):
        client("https://example.invalid/v1")
    assert client("http://127.0.0.1:9/v1")  # plain http reads no certificate file
