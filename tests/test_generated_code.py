"""Code a model generated runs only when the user allows it, and then in a box: no key of adaptkit's process, no
write outside its folder, no network, no process that outlives its timeout; and an API key goes only where it belongs
(the escapes of issue 25)."""

import socket
import threading
import time

import pytest

from adaptkit.methods.scorers import run_test, sandbox

pytestmark = pytest.mark.unit
boxed = pytest.mark.skipif(sandbox() is None, reason="no user namespaces on this machine")


@boxed
def test_it_reads_no_key_of_the_process_that_runs_it(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-0123")
    solution = """
import glob, os
seen = str(dict(os.environ))
for path in glob.glob("/proc/*/environ"):
    try:
        seen += open(path, "rb").read().decode(errors="ignore")
    except OSError:
        pass
"""
    passed, why = run_test(solution, "assert 'sk-test-secret-0123' not in seen, 'read a key'")
    assert passed, why


@boxed
def test_it_writes_nothing_outside_its_folder(tmp_path):
    target = tmp_path / "escaped.txt"
    solution = f"""
try:
    open({str(target)!r}, "w").write("out")
except OSError:
    pass
"""
    passed, why = run_test(solution, "pass")
    assert passed, why
    assert not target.exists()


@boxed
def test_it_reaches_no_network():
    heard = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(3)
        port = listener.getsockname()[1]

        def accept():
            try:
                heard.append(listener.accept())
            except OSError:
                pass

        waiter = threading.Thread(target=accept)
        waiter.start()
        solution = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"key")
except OSError:
    pass
"""
        run_test(solution, "pass")
        waiter.join()
    assert not heard


@boxed
def test_a_detached_grandchild_does_not_outlive_the_timeout():
    solution = """
import subprocess, time
subprocess.Popen(["sleep", "60"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(60)
"""
    started = time.perf_counter()
    passed, why = run_test(solution, "pass", timeout_s=2)
    assert not passed and "timed out" in why and time.perf_counter() - started < 8


PROMPTS = ["prompt_engineering", "backend.kind=openai", "backend.model=m"]


@pytest.mark.parametrize("overrides, sent, refused", [
    (["backend.api_key_env=OPENAI_API_KEY", "backend.base_url=https://api.openai.com/v1"], "goes to api.openai.com only", None),
    (["backend.api_key_env=SOME_OTHER_SECRET", "backend.base_url=https://collector.example/v1"], None, "--send-key"),
    (["backend.api_key_env=OPENAI_API_KEY", "backend.base_url=https://collector.example/v1"], None, "is api.openai.com's key"),
    (["backend.api_key_env=OPENAI_API_KEY", "backend.base_url=http://collector.example/v1"], None, "plain http"),
    (["backend.api_key_env=GATEWAY_KEY", "backend.base_url=https://gw.example/v1", "backend.allow_key_to=gw.example"],
     "allowed by backend.allow_key_to", None),
    (["backend.api_key_env=LOCAL_KEY", "backend.base_url=http://127.0.0.1:9/v1"], "goes to 127.0.0.1 only", None),
])
def test_a_key_goes_only_where_it_belongs(invoke, monkeypatch, overrides, sent, refused):
    """Checked before anything is sent: a run refuses in one line; --dry-run says where the key would go."""
    for name in ("OPENAI_API_KEY", "SOME_OTHER_SECRET", "GATEWAY_KEY", "LOCAL_KEY"):
        monkeypatch.setenv(name, "sk-test")
    dry = invoke("run", *PROMPTS, *overrides, "--dry-run")
    assert dry.exit_code == 0, dry.output
    said = " ".join(dry.stdout.split())  # however wide the terminal the tests run in
    if sent:
        assert sent in said
    else:
        assert "the real run refuses" in said
        result = invoke("run", *PROMPTS, *overrides)
        assert result.exit_code == 2 and refused in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_send_key_is_the_users_consent_but_never_for_plain_http(invoke, monkeypatch):
    monkeypatch.setenv("SOME_OTHER_SECRET", "sk-test")
    https = invoke("run", *PROMPTS, "backend.api_key_env=SOME_OTHER_SECRET", "backend.base_url=https://gw.example/v1", "--dry-run",
                   "--send-key")
    assert "allowed by --send-key" in " ".join(https.stdout.split())
    http = invoke("run", *PROMPTS, "backend.api_key_env=SOME_OTHER_SECRET", "backend.base_url=http://gw.example/v1", "--send-key")
    assert http.exit_code == 2 and "plain http" in http.stderr


def test_a_vendor_job_is_never_started_over_plain_http(invoke, tmp_path):
    result = invoke("run", "vendor_sft", "backend.base_url=http://vendor.example/v1", "backend.api_key_env=", f"output_dir={tmp_path / 'v'}",
                    "--start-job")
    assert result.exit_code == 2 and "plain http" in result.stderr and "OPENAI_API_KEY" in result.stderr
