"""Deployment exports of a finished run. ONNX (classifiers): torch's ONNX exporter on the merged model, optionally int8
by ONNX Runtime's quantizer, then scored with ONNX Runtime on the run's own eval rows with the run's own scorer, beside
the trained model on the same rows (score, agreement, size, latency). GGUF (causal LMs): llama.cpp's own converter
and quantizer, an Ollama Modelfile, and the same check through llama.cpp's bindings. vLLM (causal LMs): the serve
command, several LoRA adapters on one base where the runs are adapters, the run's chat template, and an OpenAI client.

optimum's ONNX exporter is not used: optimum-onnx (0.1) pins transformers < 4.58, and adaptkit runs on transformers 5.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import time
import warnings
from pathlib import Path

from adaptkit._files import new_folder, staged_folder
from adaptkit.errors import InputError
from adaptkit.runners.predict import CLASSIFIER, Run, classify, load_model, open_run, score

REPORT = "export_report.json"
ONNX_FILE = "model.onnx"
QUANTS = ("none", "int8")


@contextlib.contextmanager
def _hushed(*loggers: str, stderr: bool = False):
    """An exporter's and a quantizer's progress and advice (stdout, warnings, the root logger's and `loggers`' lines
    below ERROR; with `stderr`, what they print there too) kept off the user's screen."""
    import logging

    quiet = [logging.getLogger(), *(logging.getLogger(name) for name in loggers)]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                (contextlib.redirect_stderr(io.StringIO()) if stderr else contextlib.nullcontext()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)


def check_mergeable(run: Run) -> None:
    """An adapter run exports merged into its 16-bit base: a LoRA/IA3 adapter, not on a 4-bit (QLoRA) base."""
    if not run.adapter:
        return
    if run.recipe.quantization != "none":
        raise InputError(f"{run.folder}: a QLoRA run (its base loaded in {run.recipe.quantization}): export merges the adapter "
                         "into a 16-bit base, which this run never trained against; retrain with lora.quantization=none, or "
                         f"adaptkit merge {run.folder} -o DIR --dequantize and convert that folder yourself")
    from adaptkit.runners.merge import check

    check(run, dequantize=False)


def _merged(run: Run):
    """The run's model with any LoRA/IA3 adapter folded in (PEFT's merge_and_unload), in eval mode, and its tokenizer."""
    check_mergeable(run)
    model, tokenizer = load_model(run)
    if run.adapter:
        model = model.merge_and_unload()
    return model.to("cpu").eval(), tokenizer


def run_data(run: Run):
    """The run's data, read as the run read it (its eval rows: data.eval, or the share of data.train it held out);
    one line where there are no eval rows to check an export on."""
    from adaptkit.runners.data import load_data

    try:
        data = load_data(run.recipe)
    except InputError as exc:
        raise InputError(f"{run.folder}: its eval rows cannot be read for the parity check ({exc})") from None
    if not data.eval:
        raise InputError(f"{run.folder}: its recipe has no eval rows to check the export on")
    return data


def eval_rows(run: Run) -> list[dict]:
    """The run's held-out rows (run_data's)."""
    return run_data(run).eval


def _onnx_classify(session, tokenizer, run: Run, rows: list[dict], batch_size: int) -> list[dict]:
    """classify()'s rows (label and probabilities), from ONNX Runtime on the same tokenization."""
    import numpy as np

    column, wanted = run.recipe.data.text_column, {i.name for i in session.get_inputs()}
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        encoded = tokenizer([r[column] for r in batch], truncation=True, max_length=run.recipe.training.max_length,
                            padding=True, return_tensors="np")
        logits = session.run(None, {k: v.astype(np.int64) for k, v in encoded.items() if k in wanted})[0].astype(np.float64)
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probabilities = exp / exp.sum(axis=-1, keepdims=True)
        for row, p in zip(batch, probabilities):
            out.append({**row, "prediction": run.labels[int(p.argmax())],
                        "probabilities": {label: round(float(v), 6) for label, v in zip(run.labels, p)}})
    return out


def _timed(predict, rows: list[dict], batch_size: int) -> tuple[list[dict], float]:
    """Predictions and milliseconds per row, after one warm-up batch."""
    predict(rows[:batch_size])
    started = time.perf_counter()
    predicted = predict(rows)
    return predicted, 1000 * (time.perf_counter() - started) / len(rows)


def export_onnx(run_dir: str, target: str, *, quant: str = "none", max_drop: float = 0.01, batch_size: int = 32) -> dict:
    """A classifier run as an ONNX model folder (model.onnx, tokenizer, config, labels), scored against the trained model."""
    import torch

    if quant not in QUANTS:
        raise InputError(f"--quant {quant}: ONNX takes {' or '.join(QUANTS)}")
    import importlib.util

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(f"--format onnx needs {', '.join(missing)}: pip install 'adaptkit[deploy]'")
    run = open_run(run_dir)
    if run.recipe.task != CLASSIFIER:
        raise InputError(f"{run_dir}: --format onnx exports classifiers; a causal LM run goes to --format vllm")
    out = new_folder(target, "export")
    rows = eval_rows(run)
    model, tokenizer = _merged(run)
    sample = tokenizer([r[run.recipe.data.text_column] for r in rows[:2]], padding=True, return_tensors="pt")
    names = list(sample.keys())
    with staged_folder(out, "exporting") as folder:
        exported = folder / ONNX_FILE
        batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
        with _hushed("torch.onnx"):
            torch.onnx.export(model, args=(), kwargs=dict(sample), f=str(exported), input_names=names, output_names=["logits"],
                              dynamo=True, dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
                              external_data=False, verbose=False)
            if quant == "int8":
                from onnxruntime.quantization import QuantType, quantize_dynamic

                full = folder / "model.fp32.onnx"
                exported.rename(full)
                quantize_dynamic(str(full), str(exported), weight_type=QuantType.QInt8)
                full.unlink()
        model.config.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        (folder / "labels.json").write_text(json.dumps(run.labels, indent=2) + "\n", encoding="utf-8")
        report = _onnx_parity(run, model, tokenizer, exported, rows, batch_size, quant, max_drop)
        report["artifact"] = str(out / ONNX_FILE)
        (folder / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (folder / "README.md").write_text(_onnx_card(run, out, report, str(rows[0][run.recipe.data.text_column])), encoding="utf-8")
    return report


def _onnx_parity(run: Run, model, tokenizer, exported: Path, rows: list[dict], batch_size: int, quant: str, max_drop: float) -> dict:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    trained, trained_ms = _timed(lambda part: classify(model, tokenizer, run, part, batch_size, lambda *_: None), rows, batch_size)
    onnx_rows, onnx_ms = _timed(lambda part: _onnx_classify(session, tokenizer, run, part, batch_size), rows, batch_size)
    largest = max(abs(a["probabilities"][label] - b["probabilities"][label])
                  for a, b in zip(trained, onnx_rows) for label in run.labels)
    report = report_of(run, size_mb(model), exported, ("onnx", "ONNX Runtime", quant, max_drop), (trained, score(run, trained), trained_ms),
                     (onnx_rows, score(run, onnx_rows), onnx_ms))
    return {**report, "max_probability_difference": round(largest, 6)}


def size_mb(model) -> float:
    """A model's weights in MB as it holds them in memory."""
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6


def report_of(run: Run, trained_mb: float, exported: Path, what: tuple, trained: tuple, copy: tuple) -> dict:
    """The check of an export: `what` is (format, runtime, quant, max_drop); `trained` and `copy` are each side's
    (predicted rows, scores, milliseconds a row) on the same eval rows. `exported` is a file, or a folder whose
    safetensors files are the weights."""
    form, runtime, quant, max_drop = what
    (trained_rows, trained_scores, trained_ms), (copy_rows, copy_scores, copy_ms) = trained, copy
    if trained_scores is None or copy_scores is None:
        raise InputError(f"{run.folder}: its eval rows hold no answers to score the export on (or its scorer runs code)")
    primary = _primary(run, trained_scores)
    difference = round(copy_scores[primary] - trained_scores[primary], 6)
    files = sorted(exported.glob("*.safetensors")) if exported.is_dir() else [exported]
    return {
        "format": form, "runtime": runtime, "quant": quant, "run": str(run.folder), "rows": len(trained_rows), "metric": primary,
        "trained": {primary: trained_scores[primary], "ms_per_row": round(trained_ms, 3), "size_mb": round(trained_mb, 2)},
        "exported": {primary: copy_scores[primary], "ms_per_row": round(copy_ms, 3), "size_mb": round(sum(f.stat().st_size for f in files) / 1e6, 2)},
        "difference": difference,
        "agreement": round(sum(a["prediction"] == b["prediction"] for a, b in zip(trained_rows, copy_rows)) / len(trained_rows), 4),
        "max_drop": max_drop, "within_threshold": -difference <= max_drop,
    }


def _onnx_card(run: Run, out: Path, report: dict, example: str) -> str:
    """The folder's README: what was exported, what the check measured, and a snippet that classifies `example` (an
    eval row's text: the run's own kind of input)."""
    metric = report["metric"]
    return (f"# {out.name}\n\nThe classifier trained by `adaptkit run` in `{run.folder}` ({run.recipe.method}), exported to ONNX "
            f"by `adaptkit export --format onnx` (torch's exporter{', int8 weights by ONNX Runtime' if report['quant'] == 'int8' else ''})."
            f"\n\nOn the run's {report['rows']} eval rows: {metric} {report['exported'][metric]:.4f} with ONNX Runtime against "
            f"{report['trained'][metric]:.4f} trained ({report['difference']:+.4f}); the same label on {report['agreement']:.1%} of "
            f"rows. Labels: {', '.join(run.labels)} (in `labels.json` and the config's id2label).\n\n## Use it\n\n```python\n"
            "import numpy as np, onnxruntime\nfrom transformers import AutoTokenizer\n\n"
            f"tokenizer = AutoTokenizer.from_pretrained('{out}')\n"
            f"session = onnxruntime.InferenceSession('{out / ONNX_FILE}')\n"
            f"encoded = tokenizer([{example[:200]!r}], padding=True, return_tensors='np')\n"
            "names = {i.name for i in session.get_inputs()}\n"
            "logits = session.run(None, {k: v.astype(np.int64) for k, v in encoded.items() if k in names})[0]\n"
            "```\n")


# ------------------------------------------------------------------------------------------------ vLLM


def vllm_runs(run_dirs: list[str], trust_remote_code: bool = False) -> list[Run]:
    """The runs one vLLM server can serve: LoRA adapters on one base, or one full-weight causal run (else one line)."""
    runs = [open_run(folder, trust_remote_code=trust_remote_code) for folder in run_dirs]
    for run in runs:
        if run.recipe.task == CLASSIFIER:
            raise InputError(f"{run.folder}: vLLM serves causal LMs here; a classifier goes to export --format onnx")
    adapters = [run for run in runs if run.adapter]
    if adapters and len(adapters) != len(runs):
        raise InputError("vLLM: give adapter runs on one base (served together), or one full-weight run")
    if not adapters and len(runs) > 1:
        raise InputError("vLLM: several full-weight runs are several servers: give them one at a time")
    for run in adapters:
        peft_type = json.loads((run.weights / "adapter_config.json").read_text(encoding="utf-8")).get("peft_type")
        if peft_type != "LORA":
            raise InputError(f"{run.folder}: vLLM serves LoRA adapters, not {peft_type}: merge it first (adaptkit merge "
                             f"{run.folder} -o DIR), then: vllm serve DIR")
    bases = {run.recipe.model for run in adapters}
    if len(bases) > 1:
        raise InputError(f"vLLM: adapters on different bases ({', '.join(sorted(bases))}) cannot share one server")
    names = [run.folder.name for run in runs]
    if len(set(names)) != len(names):
        raise InputError(f"vLLM: two runs share the folder name {names[0]}: the served names (folder names) must differ")
    return runs


def vllm_command(runs: list[Run], host: str, port: int) -> list[str]:
    """`vllm serve` for the runs (after vllm_runs): the base with --enable-lora and one --lora-modules NAME=PATH per
    adapter, or the full-weight run; served under the run folders' names, as `adaptkit serve` names them."""
    from adaptkit.models import resolve_model

    first = runs[0]
    words = ["vllm", "serve"]
    if first.adapter:
        ranks = [json.loads((r.weights / "adapter_config.json").read_text(encoding="utf-8")).get("r", 16) for r in runs]
        words += [resolve_model(first.recipe.model), "--enable-lora", "--max-lora-rank", str(_lora_rank(max(ranks))),
                  "--max-loras", str(len(runs)), "--lora-modules", *(f"{r.folder.name}={r.weights.resolve()}" for r in runs)]
    else:
        words += [str(first.weights.resolve()), "--served-model-name", first.folder.name]
    template = template_file(first)
    if template is not None:  # the format the run trained on, whatever the base's own template says
        words += ["--chat-template", str(template)]
    return words + ["--max-model-len", str(first.recipe.training.max_length), "--host", host, "--port", str(port)]


def template_file(run: Run) -> Path | None:
    """The run's chat template file (transformers saves it beside the tokenizer), or None."""
    for folder in (run.weights, run.folder):
        if (folder / "chat_template.jinja").is_file():
            return (folder / "chat_template.jinja").resolve()
    return None


def export_vllm(run_dirs: list[str], target: str, *, port: int = 8000) -> dict:
    """serve.sh (vllm serve), client.py (an OpenAI client for the served names) and a README, in a new folder."""
    runs = vllm_runs(run_dirs)
    out = new_folder(target, "export")
    names = [run.folder.name for run in runs]
    command = shlex.join(vllm_command(runs, "127.0.0.1", port))
    with staged_folder(out, "exporting") as folder:
        (folder / "serve.sh").write_text("#!/bin/bash\n# Serve the run(s) with vLLM (a CUDA GPU): written by adaptkit export "
                                         "--format vllm\nset -euo pipefail\n" + command + "\n", encoding="utf-8")
        (folder / "serve.sh").chmod(0o755)
        (folder / "client.py").write_text(_client(names, port), encoding="utf-8")
        (folder / "README.md").write_text(_vllm_card(runs, names, command), encoding="utf-8")
    return {"format": "vllm", "serve": command, "models": names, "folder": str(out),
            "note": "not scored here: vLLM needs a CUDA GPU; client.py asks the served model as it asks `adaptkit serve`"}


def _lora_rank(rank: int) -> int:
    """vLLM's --max-lora-rank takes one of its supported sizes: the smallest that holds the adapters' rank."""
    return next(size for size in (8, 16, 32, 64, 128, 256, 320, 512) if size >= rank) if rank <= 512 else rank


def _client(names: list[str], port: int) -> str:
    return (f'"""Ask the served run(s) over the OpenAI protocol: vLLM (serve.sh) or `adaptkit serve`, whichever listens."""\n\n'
            "import os\nimport sys\n\nfrom openai import OpenAI\n\n"
            f'client = OpenAI(base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:{port}/v1"),\n'
            '                api_key=os.environ.get("OPENAI_API_KEY", "none"))\n'
            f"MODELS = {names!r}\n\n"
            "prompt = sys.argv[1] if len(sys.argv) > 1 else 'Hello'\n"
            "for model in MODELS:\n"
            "    reply = client.chat.completions.create(model=model, messages=[{'role': 'user', 'content': prompt}],\n"
            "                                           max_tokens=64, temperature=0)\n"
            "    print(f'{model}: {reply.choices[0].message.content}')\n")


def _vllm_card(runs: list[Run], names: list[str], command: str) -> str:
    kind = f"{len(runs)} LoRA adapter(s) on {runs[0].recipe.model}" if runs[0].adapter else f"the full-weight run {runs[0].folder}"
    return (f"# vLLM\n\nServes {kind}, as `{', '.join(names)}`, with the chat template the run(s) trained with.\n\n```bash\n"
            f"./serve.sh        # {command[:60]}...\npython client.py 'your prompt'\n```\n\n"
            "`client.py` speaks the OpenAI protocol: it asks `adaptkit serve` of the same runs the same way.\n")


# ------------------------------------------------------------------------------------------------ GGUF (llama.cpp, Ollama)

GGUF_QUANTS = {"f16": None, "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
LLAMA_CPP_ENV = "ADAPTKIT_LLAMA_CPP"  # a llama.cpp checkout whose convert_hf_to_gguf.py to use
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")  # what the converter imports, from llama.cpp's tree


def llama_cpp_converter(log=lambda line: None) -> Path:
    """llama.cpp's own convert_hf_to_gguf.py: the one in $ADAPTKIT_LLAMA_CPP (a llama.cpp checkout), else the one in the
    installed llama-cpp-python's source release (the same llama.cpp as its quantizer), fetched once with pip."""
    import shutil
    import subprocess
    import sys
    import tarfile
    import tempfile

    from adaptkit.runners.predict import cache_dir

    given = os.environ.get(LLAMA_CPP_ENV)
    if given:
        script = Path(given).expanduser() / "convert_hf_to_gguf.py"
        if not script.is_file():
            raise InputError(f"{LLAMA_CPP_ENV}={given}: no convert_hf_to_gguf.py there (give a llama.cpp checkout)")
        return script
    import llama_cpp

    version = llama_cpp.__version__
    folder = cache_dir() / f"llama.cpp-{version}"
    if (folder / CONVERTER_PARTS[0]).is_file():
        return folder / CONVERTER_PARTS[0]
    log(f"note: fetching llama.cpp's converter from llama-cpp-python {version}'s source release (once) into {folder}")
    with tempfile.TemporaryDirectory() as tmp:
        fetched = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                                  f"llama-cpp-python=={version}", "-d", tmp], capture_output=True, text=True)
        archives = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if fetched.returncode != 0 or not archives:
            raise InputError(f"cannot fetch llama.cpp's converter (pip download llama-cpp-python=={version} failed: "
                             f"{(fetched.stderr.strip().splitlines() or ['no archive'])[-1][:160]}); offline, set {LLAMA_CPP_ENV} "
                             "to a llama.cpp checkout")
        prefix = f"{archives[0].name[:-len('.tar.gz')]}/vendor/llama.cpp/"
        staging = Path(tmp) / "llama.cpp"
        with tarfile.open(archives[0]) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(prefix)
                       and any(m.name[len(prefix):].startswith(part) for part in CONVERTER_PARTS)]
            for member in members:
                member.name = member.name[len(prefix):]
            archive.extractall(staging, members=members, filter="data")
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(folder))
    return folder / CONVERTER_PARTS[0]


def _quiet_run(command: list[str], what: str) -> None:
    """A converter or quantizer step in its own process, its chatter kept; its last line is the error when it fails."""
    import subprocess

    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).strip().splitlines() if line.strip()]
        raise InputError(f"{what} failed: {(lines or ['no output'])[-1][:240]}")


QUANTIZE = """import sys, llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = getattr(llama_cpp, sys.argv[3])
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), params))
"""


def export_gguf(run_dir: str, target: str, *, quant: str = "q8_0", max_drop: float = 0.01, max_new_tokens: int = 64,
                log=lambda line: None) -> dict:
    """A causal run as GGUF (llama.cpp's converter, then its quantizer) with an Ollama Modelfile carrying the run's chat
    template, scored with llama.cpp on the run's eval rows beside the trained model."""
    import importlib.util
    import sys
    import tempfile

    if quant not in GGUF_QUANTS:
        raise InputError(f"--quant {quant}: GGUF takes {', '.join(GGUF_QUANTS)}")
    if importlib.util.find_spec("llama_cpp") is None:
        raise InputError("--format gguf needs llama.cpp's Python bindings: pip install 'adaptkit[gguf]' (it compiles llama.cpp)")
    run = open_run(run_dir)
    if run.recipe.task == CLASSIFIER:
        raise InputError(f"{run_dir}: --format gguf exports causal LMs; a classifier goes to --format onnx")
    check_mergeable(run)
    out = new_folder(target, "export")
    rows = eval_rows(run)
    converter = llama_cpp_converter(log)
    name = f"model-{quant}.gguf"
    with tempfile.TemporaryDirectory() as tmp, staged_folder(out, "exporting") as folder:
        source = run.weights
        if run.adapter:  # llama.cpp converts a whole model: the adapter folded into its base first
            from adaptkit.runners.merge import merge

            source = Path(tmp) / "merged"
            merge(str(run.folder), str(source))
        wide = (folder if quant == "f16" else Path(tmp)) / "model-f16.gguf"
        try:
            _quiet_run([sys.executable, str(converter), str(source), "--outfile", str(wide), "--outtype", "f16"], "llama.cpp's converter")
        except InputError as exc:
            if "pre-tokenizer was not recognized" not in str(exc):
                raise
            raise InputError(f"{exc}: llama.cpp does not know this model's tokenizer, so it cannot convert it (the models it knows, "
                             "such as Llama, Qwen, Mistral and Gemma, convert; a SentencePiece tokenizer does too)") from None
        if quant != "f16":
            _quiet_run([sys.executable, "-c", QUANTIZE, str(wide), str(folder / name), GGUF_QUANTS[quant]], "llama.cpp's quantizer")
        loaded = load_model(run)
        (folder / "Modelfile").write_text(_modelfile(loaded[1], run, name), encoding="utf-8")
        report = _gguf_parity(run, loaded, folder / name, rows, quant, max_drop, max_new_tokens)
        report["artifact"] = str(out / name)
        (folder / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (folder / "README.md").write_text(_gguf_card(run, out, name, report), encoding="utf-8")
    return report


def _modelfile(tokenizer, run: Run, name: str) -> str:
    """An Ollama Modelfile: the GGUF, the run's chat template as Ollama's TEMPLATE (the run's Jinja template rendered
    around Ollama's {{ .System }} and {{ .Prompt }}), its end token as a stop, greedy as the parity check was."""
    user = [{"role": "user", "content": "{{ .Prompt }}"}]
    if getattr(tokenizer, "chat_template", None):
        plain = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        try:
            system = tokenizer.apply_chat_template([{"role": "system", "content": "{{ .System }}"}, *user], tokenize=False,
                                                   add_generation_prompt=True)
            template = f"{{{{ if .System }}}}{system}{{{{ else }}}}{plain}{{{{ end }}}}"
        except Exception:  # a template that takes no system turn
            template = plain
    else:
        template = "{{ .Prompt }}"
    stop = f'PARAMETER stop "{tokenizer.eos_token}"\n' if tokenizer.eos_token else ""
    return (f"# Ollama: ollama create {run.folder.name} -f Modelfile   then   ollama run {run.folder.name}\n"
            f"FROM ./{name}\nTEMPLATE \"\"\"{template}\"\"\"\n{stop}PARAMETER temperature 0\n")


def _gguf_parity(run: Run, loaded, exported: Path, rows: list[dict], quant: str, max_drop: float, max_new_tokens: int) -> dict:
    import llama_cpp

    from adaptkit.runners.predict import as_trained, predict, prompts_of

    model, tokenizer = loaded
    started = time.perf_counter()
    trained, trained_scores = predict(run, rows, 16, max_new_tokens, loaded=(model, tokenizer))
    trained_ms = 1000 * (time.perf_counter() - started) / len(rows)
    specials = not run.recipe.data.messages_column
    llm = llama_cpp.Llama(str(exported), n_ctx=run.recipe.training.max_length + max_new_tokens, verbose=False, seed=0)
    ends = {tokenizer.eos_token_id, llm.token_eos()} - {None}
    gguf_rows = []
    started = time.perf_counter()
    for row, prompt in zip(rows, prompts_of(run, rows, tokenizer)):
        ids = as_trained(tokenizer, prompt, specials, run.recipe.training.max_length)
        new = []
        llm.reset()
        for token in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
            if token in ends or len(new) >= max_new_tokens:
                break
            new.append(token)
        gguf_rows.append({**row, "prediction": tokenizer.decode(new, skip_special_tokens=True).strip()})
    gguf_ms = 1000 * (time.perf_counter() - started) / len(rows)
    return report_of(run, size_mb(model), exported, ("gguf", "llama.cpp", quant, max_drop), (trained, trained_scores, trained_ms),
                   (gguf_rows, score(run, gguf_rows), gguf_ms))


def _primary(run: Run, scores: dict) -> str:
    """The metric the run is ranked by: the recipe's scoring.primary, else its scorer's own."""
    from adaptkit.methods.scorers import FOR_TASK, SCORERS

    name = run.recipe.scoring.scorer or FOR_TASK.get(run.recipe.task, "")
    wanted = run.recipe.scoring.primary or (SCORERS[name].primary if name in SCORERS else None)
    return wanted if wanted in scores else next(k for k, v in scores.items() if isinstance(v, float))


def _gguf_card(run: Run, out: Path, name: str, report: dict) -> str:
    metric = report["metric"]
    return (f"# {out.name}\n\nThe causal LM trained by `adaptkit run` in `{run.folder}` ({run.recipe.method}), converted to GGUF by "
            f"llama.cpp's converter and quantizer ({report['quant']}), by `adaptkit export --format gguf`.\n\n"
            f"On the run's {report['rows']} eval rows, answered greedily: {metric} {report['exported'][metric]:.4f} with llama.cpp "
            f"against {report['trained'][metric]:.4f} trained ({report['difference']:+.4f}); the same answer on "
            f"{report['agreement']:.1%} of rows.\n\n```bash\nollama create {run.folder.name} -f Modelfile\n"
            f"llama-cli -m {name} -p 'your prompt'\n```\n")
