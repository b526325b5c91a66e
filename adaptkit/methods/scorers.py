"""One scorer per task, shared by every method that answers it, trained or not, so that runs compare like with like.

A scorer turns predictions and references into metrics (all between 0 and 1, higher is better) and names its
primary metric, the one a bake-off ranks by. Built in:

- classification: accuracy (primary), macro-F1, a per-class report (precision, recall, F1, support).
- extraction: the reply parsed as JSON: json_valid, exact_match (the same fields and values), field_f1 (primary:
  micro F1 over field/value pairs), schema_valid when a JSON schema is given (jsonschema).
- generation (qa, summarization): exact_match, token_f1 (SQuAD's normalisation), rougeL (primary; rouge-score, with
  stemming), chrf (sacrebleu, divided by 100).
- code: pass_at_1 (primary): each reply runs with its test in a fresh Python subprocess, with a timeout and limits on
  memory, CPU time and file size; never in this process.
- chat: win_rate (primary) of a pairwise judge against a baseline (the base model, or the bare prompt), asked twice
  with the two answers' positions swapped; a verdict that flips with the position is a tie. The judge prompt is kept.
  A rubric judge scores each reply alone (rubric_score, 1-10 scaled to 0-1).
"""

from __future__ import annotations

import json
import os
import re
import string
import subprocess
import sys
import tempfile
from collections import Counter
import contextlib
import functools
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Scorer:
    id: str
    primary: str
    score: Callable[..., dict]  # (predictions, references, **options) -> metrics


# ------------------------------------------------------------------------------------------------ text normalisation

def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces (unicode letters kept)."""
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    predicted, gold = normalize(prediction).split(), normalize(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def micro_f1(counts: list[tuple[int, int, int]]) -> float:
    """Field F1 over (true positive, false positive, false negative) counts summed over rows."""
    tp, fp, fn = (sum(c[i] for c in counts) for i in range(3))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def _check(predictions: list, references: list) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("nothing to score")


# ----------------------------------------------------------------------------------------------------- the scorers

def classification(predictions: list, references: list, **options) -> dict:
    _check(predictions, references)
    gold, guessed = [str(r) for r in references], [str(p).strip() for p in predictions]
    report, f1s = {}, []
    for label in sorted(set(gold) | set(guessed)):
        tp = sum(g == p == label for g, p in zip(gold, guessed))
        fp = sum(p == label != g for g, p in zip(gold, guessed))
        fn = sum(g == label != p for g, p in zip(gold, guessed))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        f1s.append(f1)
        if label in gold:
            report[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": gold.count(label)}
    right = [float(g == p) for g, p in zip(gold, guessed)]
    return {"accuracy": _mean(right), "f1_macro": _mean(f1s), "per_class": report, "rows": {"accuracy": right}}


def parse_json(text) -> object | None:
    """The JSON object in a reply: the whole text, a fenced ```json block, or the first {...} span; None if none parses."""
    if isinstance(text, (dict, list)):
        return text
    text = str(text).strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    for candidate in ([fenced.group(1)] if fenced else []) + [text, text[text.find("{"):text.rfind("}") + 1] if "{" in text else ""]:
        try:
            return json.loads(candidate)
        except (ValueError, TypeError):
            continue
    return None


def _fields(value) -> set:
    if not isinstance(value, dict):
        return set()
    return {(str(k), normalize(json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v))) for k, v in value.items()}


def extraction(predictions: list, references: list, schema: dict | None = None, **options) -> dict:
    _check(predictions, references)
    parsed = [parse_json(p) for p in predictions]
    gold = [parse_json(r) if not isinstance(r, dict) else r for r in references]
    fields = [(_fields(p), _fields(g)) for p, g in zip(parsed, gold)]  # each row's (predicted, expected) fields, once
    counts = [(len(got & want), len(got - want), len(want - got)) for got, want in fields]
    valid = [float(isinstance(p, dict)) for p in parsed]
    exact = [float(isinstance(p, dict) and got == want) for p, (got, want) in zip(parsed, fields)]
    metrics = {"json_valid": _mean(valid), "exact_match": _mean(exact), "field_f1": micro_f1(counts),
               "rows": {"json_valid": valid, "exact_match": exact, "field_f1": counts}}
    if schema is not None:
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema)
        metrics["schema_valid"] = _mean(isinstance(p, dict) and validator.is_valid(p) for p in parsed)
    return metrics


def generation(predictions: list, references: list, **options) -> dict:
    _check(predictions, references)
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import CHRF

    predictions, references = [str(p) for p in predictions], [str(r) for r in references]
    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    chrf = CHRF()
    pairs = list(zip(predictions, references))
    rows = {"exact_match": [float(normalize(p) == normalize(r)) for p, r in pairs], "token_f1": [token_f1(p, r) for p, r in pairs],
            "rougeL": [rouge.score(r, p)["rougeL"].fmeasure for p, r in pairs], "chrf": [chrf.sentence_score(p, [r]).score / 100 for p, r in pairs]}
    return {**{name: _mean(values) for name, values in rows.items()}, "rows": rows}


EXTRA_PROCESSES = 32  # processes generated code may start (RLIMIT_NPROC counts all of the user's, so: theirs + this)


def _user_processes() -> int:
    """Processes on this machine now (an upper bound of the user's own), for RLIMIT_NPROC."""
    try:
        return sum(name.isdigit() for name in os.listdir("/proc"))
    except OSError:
        return 4096


def _limits(memory_mb: int, cpu_s: int):
    processes = _user_processes() + EXTRA_PROCESSES

    def apply():  # in the child, before the interpreter starts: memory, CPU seconds, file size, no core dumps
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 2**20, 16 * 2**20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if os.getuid() != 0:  # root is not held by RLIMIT_NPROC
            resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))  # no fork bomb
        os.setsid()  # its own process group: a timeout kills everything it started
    return apply


def _code_block(text: str) -> str:
    fenced = re.search(r"```(?:python|py)?\s*\n(.*?)```", str(text), re.S)
    return fenced.group(1) if fenced else str(text)


BOX = ("unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--mount-proc", "--kill-child")
# Inside the namespaces: every mount read-only, then the answer's own folder bound writable again; then the test.
BOX_SCRIPT = ('for m in $(cut -d" " -f2 /proc/self/mounts); do mount -o remount,bind,ro "$m" 2>/dev/null; done; '
              'mount --bind "$1" "$1" && mount -o remount,bind,rw "$1" && cd "$1" && exec "$2" -I -B "$3"')
NOWHERE = "http://127.0.0.1:9"  # the discard port: proxied requests go nowhere where no network namespace is possible


@functools.lru_cache(maxsize=1)
def sandbox() -> str | None:
    """How generated code is boxed on this machine: "namespaces" (its own user, mount, network and process namespaces,
    util-linux `unshare`: no network, no other process to see, the filesystem read-only but its folder), or None
    (then: an empty environment, proxies pointed nowhere, adaptkit's own environment unreadable while it runs)."""
    import shutil

    if os.name != "posix" or shutil.which("unshare") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="adaptkit-box-") as folder:
        try:
            done = subprocess.run([*BOX, "sh", "-c", BOX_SCRIPT, "box", folder, "/bin/true", "x"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
    return "namespaces" if done.returncode == 0 else None


@contextlib.contextmanager
def _hidden_environment():
    """While unboxed code runs: this process not dumpable, so /proc/<pid>/environ (its API keys) is unreadable to
    other processes of the same user; restored afterwards."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        libc = None
    try:
        yield
    finally:
        if libc is not None:
            libc.prctl(4, 1, 0, 0, 0)


def run_test(solution: str, test: str, timeout_s: float = 10.0, memory_mb: int = 1024) -> tuple[bool, str]:
    """Run the solution followed by its test in a fresh, isolated Python (-I: no user site, no PYTHON* variables) in an
    empty folder, with an empty environment, limits on memory, CPU time, file size and processes, and (where the
    machine allows) in its own namespaces: no network, no other process, nothing writable but its folder. A timeout
    kills its whole process group (and namespace). Returns (passed, why not)."""
    with tempfile.TemporaryDirectory(prefix="adaptkit-code-") as folder:
        path = os.path.join(folder, "solution_test.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(_code_block(solution) + "\n\n" + test + "\n")
        boxed = sandbox() == "namespaces"
        command = [*BOX, "sh", "-c", BOX_SCRIPT, "box", folder, sys.executable, path] if boxed else [sys.executable, "-I", "-B", path]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0", "HOME": folder, "TMPDIR": folder}
        if not boxed:  # no network namespace here: proxies that go nowhere for what honours them
            env.update({name: NOWHERE for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")})
        kwargs = {"preexec_fn": _limits(memory_mb, int(timeout_s) + 1)} if os.name == "posix" else {}
        with (contextlib.nullcontext() if boxed else _hidden_environment()):
            try:
                process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                           stdin=subprocess.DEVNULL, **kwargs)
            except OSError as exc:
                return False, f"could not start ({exc.__class__.__name__})"
            try:
                _, stderr = process.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill(process)
                return False, f"timed out after {timeout_s:g} s (killed)"
        if process.returncode == 0:
            return True, ""
        last = stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {process.returncode}"]
        return False, last[0][:200]


def _kill(process) -> None:
    """The child's whole process group, then its pipes closed without waiting on a grandchild that holds them."""
    try:
        os.killpg(process.pid, 9) if os.name == "posix" else process.kill()
    except (ProcessLookupError, PermissionError):
        pass
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def code(predictions: list, references: list, timeout_s: float = 10.0, memory_mb: int = 1024, **options) -> dict:
    """pass@1: each reference is the test code (asserts) that the prediction must pass."""
    _check(predictions, references)
    results = [run_test(p, r, timeout_s, memory_mb) for p, r in zip(predictions, references)]
    passed = [float(ok) for ok, _ in results]
    return {"pass_at_1": _mean(passed), "failures": [why for ok, why in results if not ok][:20], "rows": {"pass_at_1": passed}}


JUDGE_PROMPT = """You compare two answers to the same request. Judge which answer is more helpful, correct and \
appropriate for the request; ignore length unless it hurts the answer.

Request:
{request}

Answer A:
{a}

Answer B:
{b}

Reply with exactly one letter: A, B, or T for a tie."""

RUBRIC_PROMPT = """Score the answer to the request from 1 (useless) to 10 (excellent) against this rubric:
{rubric}

Request:
{request}

Answer:
{answer}

Reply with the number only."""


def _verdict(text: str) -> str:
    found = re.search(r"\b([ABT])\b", str(text).strip().upper())
    return found.group(1) if found else "T"


def chat(predictions: list, references: list, judge: Callable[[str], str] | None = None, requests: list | None = None,
         baseline: list | None = None, rubric: str | None = None, **options) -> dict:
    """Pairwise: each prediction against the baseline's answer (references when no baseline is given), judged twice
    with the positions swapped; a win needs both verdicts. With `rubric`, each prediction is scored alone instead."""
    _check(predictions, references)
    if judge is None:
        raise ValueError("the chat scorer needs a judge (a backend that answers the judge prompt)")
    requests = requests or [""] * len(predictions)
    if rubric:
        scores = []
        for request, answer in zip(requests, predictions):
            found = re.search(r"\d+(?:\.\d+)?", str(judge(RUBRIC_PROMPT.format(rubric=rubric, request=request, answer=answer))))
            scores.append(min(10.0, max(1.0, float(found.group()))) if found else 1.0)
        scaled = [(s - 1) / 9 for s in scores]
        return {"rubric_score": _mean(scaled), "judge_prompt": RUBRIC_PROMPT, "rows": {"rubric_score": scaled}}
    others = baseline if baseline is not None else references
    outcome = []
    for request, answer, other in zip(requests, predictions, others):
        first = _verdict(judge(JUDGE_PROMPT.format(request=request, a=answer, b=other)))   # the candidate is A
        second = _verdict(judge(JUDGE_PROMPT.format(request=request, a=other, b=answer)))  # the candidate is B
        # a win needs both verdicts; a tie, or a verdict that follows the position rather than the answer, is half
        outcome.append(1.0 if first == "A" and second == "B" else 0.0 if first == "B" and second == "A" else 0.5)
    wins, ties = outcome.count(1.0), outcome.count(0.5)
    return {"win_rate": _mean(outcome), "wins": wins, "ties": ties, "losses": len(outcome) - wins - ties, "judge_prompt": JUDGE_PROMPT,
            "rows": {"win_rate": outcome}}


SCORERS = {
    "classification": Scorer("classification", "accuracy", classification),
    "extraction": Scorer("extraction", "field_f1", extraction),
    "generation": Scorer("generation", "rougeL", generation),
    "code": Scorer("code", "pass_at_1", code),
    "chat": Scorer("chat", "win_rate", chat),
}
# The scorer each recipe task gets unless the recipe names one.
FOR_TASK = {"sequence_classification": "classification", "image_classification": "classification", "causal_lm": "generation", "question_answering": "generation"}


def scorer_for(name: str) -> Scorer:
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}: one of {', '.join(SCORERS)}, or module:function")
    return SCORERS[name]
