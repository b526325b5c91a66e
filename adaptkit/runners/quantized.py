"""4-bit (or 8-bit) weights for vLLM: a causal run quantized by llm-compressor, GPTQ or AWQ, saved in the
compressed-tensors format vLLM and Transformers load, then scored on the run's eval rows beside the trained model.

llm-compressor calibrates on the run's own training rows, formatted as the run trained on them. GPTQ runs on a CPU (slowly
on a large model); llm-compressor's AWQ pins its calibration activations in GPU memory, so it needs a CUDA GPU. The
library pins an older Transformers than adaptkit's own (llm-compressor 0.14: transformers<=5.17), so it lives in its
own environment: pip install 'adaptkit[gptq]'.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
from pathlib import Path

from adaptkit._files import new_folder, staged_folder
from adaptkit.errors import InputError
from adaptkit.runners.deploy import REPORT, _hushed, _merged, _timed, report_of, run_data, size_mb
from adaptkit.runners.predict import CLASSIFIER, Run, open_run, predict, prompts_of, score

ALGORITHMS = ("gptq", "awq")
BITS = {"w4a16": 4, "w8a16": 8}
GROUPS = (128, 64, 32)  # the group size: the largest that divides every quantized layer's inputs, else one scale a channel
CALIBRATION_ROWS = 256
INSTALL = "pip install 'adaptkit[gptq]' (in its own environment: llm-compressor pins transformers<=5.17)"


def available(algorithm: str) -> None:
    """Refuse in one line where llm-compressor, or for AWQ a CUDA GPU, is missing."""
    if importlib.util.find_spec("llmcompressor") is None:
        raise InputError(f"--format {algorithm} needs llm-compressor: {INSTALL}")
    if algorithm == "awq":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--format awq needs a CUDA GPU (llm-compressor's AWQ keeps its calibration activations in pinned GPU "
                             "memory); on this machine use --format gptq: the same 4-bit weights for vLLM, calibrated on the CPU")


def export_quantized(run_dir: str, target: str, *, algorithm: str = "gptq", quant: str = "w4a16", max_drop: float = 0.01,
                     max_new_tokens: int = 64, log=lambda line: None) -> dict:
    """A causal run's weights quantized by llm-compressor (the adapter merged in first) into a new folder that vLLM
    serves and Transformers loads, with the run's tokenizer and chat template, scored against the trained model."""
    import torch

    if algorithm not in ALGORITHMS:
        raise InputError(f"--format {algorithm}: llm-compressor exports as {' or '.join(ALGORITHMS)}")
    if quant not in BITS:
        raise InputError(f"--quant {quant}: --format {algorithm} takes {' or '.join(BITS)}")
    available(algorithm)
    run = open_run(run_dir)
    if run.recipe.task != "causal_lm":
        raise InputError(f"{run_dir}: --format {algorithm} exports causal LMs"
                         + ("; a classifier goes to --format onnx" if run.recipe.task == CLASSIFIER else ""))
    out = new_folder(target, "export")
    data = run_data(run)
    rows = data.eval
    model, tokenizer = _merged(run)
    model.to("cuda" if torch.cuda.is_available() else "cpu")  # the trained model answers where predict's would
    trained_mb = size_mb(model)
    trained, trained_ms = _timed(lambda part: predict(run, part, 16, max_new_tokens, loaded=(model, tokenizer))[0], rows, 16)
    calibration = calibration_set(run, tokenizer, data.train)
    group = group_size(model)
    log(f"note: {algorithm.upper()} {quant} ({f'groups of {group}' if group else 'one scale a channel'}) calibrated on "
        f"{len(calibration)} training rows")
    with staged_folder(out, "exporting") as folder:
        with _quieter():
            _oneshot(model, calibration, algorithm, BITS[quant], group, run.recipe.training.max_length)
            model.save_pretrained(str(folder), save_compressed=True)
            tokenizer.save_pretrained(str(folder))  # with the run's chat template: vLLM formats chat as the run trained
            quantized = _load(folder, run)
        copy, copy_ms = _timed(lambda part: predict(run, part, 16, max_new_tokens, loaded=(quantized, tokenizer))[0], rows, 16)
        report = report_of(run, trained_mb, folder, (algorithm, "Transformers (compressed-tensors, unpacked)", quant, max_drop),
                           (trained, score(run, trained), trained_ms), (copy, score(run, copy), copy_ms))
        report.update(artifact=str(out), group_size=group, calibration_rows=len(calibration),
                      serve=f"vllm serve {out.resolve()} --served-model-name {run.folder.name} --max-model-len "
                            f"{run.recipe.training.max_length}")
        (folder / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (folder / "README.md").write_text(_card(run, out, report), encoding="utf-8")
    return report


def calibration_set(run: Run, tokenizer, train: list[dict]):
    """The run's training rows as token ids, formatted as the run trained on them (its chat template, or prompt then
    answer), at most CALIBRATION_ROWS of them: what llm-compressor measures the layers' inputs on."""
    from datasets import Dataset

    d = run.recipe.data
    rows = train[:CALIBRATION_ROWS]
    if d.messages_column:
        texts = [tokenizer.apply_chat_template(r[d.messages_column], tokenize=False) for r in rows
                 if isinstance(r.get(d.messages_column), list)]
    else:
        prompted = [r for r in rows if isinstance(r.get(d.prompt_column), str)]
        answers = [r.get(d.response_column) for r in prompted]
        texts = [p + (f" {a}" if isinstance(a, str) else "") for p, a in zip(prompts_of(run, prompted, tokenizer), answers)]
    if not texts:
        raise InputError(f"{run.folder}: no training rows to calibrate the quantization on")
    encoded = tokenizer(texts, add_special_tokens=not d.messages_column, truncation=True, max_length=run.recipe.training.max_length)
    return Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})


def group_size(model) -> int | None:
    """The largest of GROUPS that divides the input width of every linear layer but the output head, else None."""
    import torch

    widths = {m.in_features for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")}
    return next((g for g in GROUPS if all(w % g == 0 for w in widths)), None)


def _oneshot(model, calibration, algorithm: str, bits: int, group: int | None, max_length: int) -> None:
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor import oneshot

    weights = QuantizationArgs(num_bits=bits, type="int", symmetric=algorithm == "gptq", strategy="group" if group else "channel",
                               group_size=group)
    groups = {"group_0": QuantizationScheme(targets=["Linear"], weights=weights)}
    if algorithm == "gptq":
        from llmcompressor.modifiers.quantization import GPTQModifier

        recipe = [GPTQModifier(config_groups=groups, ignore=["lm_head"])]
    else:  # AWQ scales the weights against the activations it measured; the quantizer then rounds them
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from llmcompressor.modifiers.transform.awq import AWQModifier

        recipe = [AWQModifier(), QuantizationModifier(config_groups=groups, ignore=["lm_head"])]
    try:
        oneshot(model=model, dataset=calibration, recipe=recipe, max_seq_length=max_length,
                num_calibration_samples=len(calibration))
    except (RuntimeError, ValueError) as exc:  # an architecture the library cannot trace or map, say
        raise InputError(f"llm-compressor's {algorithm.upper()} failed on this model: {str(exc).splitlines()[0][:240]}") from None


def _load(folder: Path, run: Run):
    """The quantized folder as Transformers reads it: a fresh load checks the files, not the object in memory.
    Transformers unpacks the weights on the first forward pass (compressed-tensors' hook); one token does it now,
    before the timed check."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=run.recipe.trust_remote_code)
    model = model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    with torch.no_grad():
        model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=model.device))
    return model


@contextlib.contextmanager
def _quieter():
    """llm-compressor's log lines (loguru's), torch's tracing advice and the progress bars (on stderr) kept off the
    user's screen, beside what the other exports hush."""
    from loguru import logger

    for name in ("llmcompressor", "compressed_tensors"):
        logger.disable(name)
    try:
        with _hushed("torch", stderr=True):
            yield
    finally:
        for name in ("llmcompressor", "compressed_tensors"):
            logger.enable(name)


def _card(run: Run, out: Path, report: dict) -> str:
    metric, form = report["metric"], report["format"].upper()
    return (f"# {out.name}\n\nThe causal LM trained by `adaptkit run` in `{run.folder}` ({run.recipe.method}), quantized by "
            f"llm-compressor's {form} ({report['quant']}, calibrated on {report['calibration_rows']} of the run's training rows) "
            f"into the compressed-tensors format, by `adaptkit export --format {report['format']}`.\n\n"
            f"On the run's {report['rows']} eval rows, answered greedily: {metric} {report['exported'][metric]:.4f} quantized "
            f"against {report['trained'][metric]:.4f} trained ({report['difference']:+.4f}); the same answer on "
            f"{report['agreement']:.1%} of rows.\n\n```bash\n{report['serve']}\n```\n\nTransformers loads it too "
            f"(`AutoModelForCausalLM.from_pretrained('{out}')`, with compressed-tensors installed); its chat template is the "
            "run's. `recipe.yaml` here is llm-compressor's record of the quantization, not an adaptkit recipe.\n")
