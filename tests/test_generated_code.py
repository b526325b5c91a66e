"""Code a model generated runs only when the user allows it, and then in a box: no key of adaptkit's process, no
write outside its folder, no network, no process that outlives its timeout (the code scorer's escapes, issue 25)."""

import socket
import threading
import time

import pytest

from adaptkit.methods.scorers import run_test, sandbox

pytestmark = [pytest.mark.unit, pytest.mark.skipif(sandbox() is None, reason="no user namespaces on this machine")]


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


def test_a_detached_grandchild_does_not_outlive_the_timeout():
    solution = """
import subprocess, time
subprocess.Popen(["sleep", "60"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(60)
"""
    started = time.perf_counter()
    passed, why = run_test(solution, "pass", timeout_s=2)
    assert not passed and "timed out" in why and time.perf_counter() - started < 8
