"""The one training core every trained method runs on: the model loader (dtype, quantization, device map,
trust_remote_code, adapters), the precision flags, the callbacks that save on Ctrl-C, and the run skeleton (check,
seed, build the trainer, fit, evaluate, save, report). Per-method code builds a trainer and says what it scores."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import signal
import time
from pathlib import Path

from adaptkit.errors import AdaptkitError, InputError
from adaptkit.methods.base import RunOptions, RunResult
from adaptkit.methods.supervised.recipe import LORA_INIT_DIR
from adaptkit.models import resolve_model
from adaptkit.recipe.schema import Recipe

class Interrupted(AdaptkitError):
    """Ctrl-C during training: a checkpoint was saved."""

    exit_code = 130
    prefix = ""

    def __init__(self, step: int, message: str = ""):
        super().__init__(message or f"interrupted at step {step}: checkpoint saved")
        self.step = step


def quiet_transformers() -> None:
    """Errors only from transformers, and no per-weight "Loading weights" bar; the hub's download bars stay (a large
    download should show its progress). The Trainer's own bar is the one progress bar of a run."""
    import transformers
    from huggingface_hub.utils import enable_progress_bars

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # also turns the hub's bars off: turned back on below
    enable_progress_bars()


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _precision(recipe: Recipe) -> dict:
    """TrainingArguments precision flags; auto = bf16-mixed on a capable GPU, fp32 elsewhere."""
    import torch

    wanted = recipe.training.precision
    on_gpu = torch.cuda.is_available()
    if wanted == "auto":
        wanted = "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "fp32"
    if wanted == "bf16":  # pure bf16: the weights load in bf16 (methods.loading); autocast only where a GPU has it
        return {"bf16": on_gpu, "fp16": False, "use_cpu": not on_gpu}
    if wanted != "fp32" and not on_gpu:
        raise InputError(f"training.precision={wanted} needs a CUDA GPU; on the CPU use fp32, bf16 (pure) or auto")
    return {"bf16": wanted == "bf16-mixed", "fp16": wanted == "fp16-mixed", "use_cpu": not on_gpu}


MODEL_CLASSES = {"causal": "AutoModelForCausalLM", "classifier": "AutoModelForSequenceClassification",
                 "image_classifier": "AutoModelForImageClassification", "speech_seq2seq": "AutoModelForSpeechSeq2Seq",
                 "image_text_to_text": "AutoModelForImageTextToText"}


def load_model(recipe: Recipe, kind: str = "causal", name: str | None = None, adapter: str | None = None, **extra):
    """The one place a model being trained is loaded: the recipe's (or `name`'s) weights with the recipe's loading
    spec (dtype, 4/8-bit base and device map, trust_remote_code) and `extra` (num_labels, label names); `adapter`: a
    LoRA folder to keep training (DPO's starting adapter)."""
    import transformers

    from adaptkit.methods.loading import load_kwargs, load_spec

    model_class = getattr(transformers, MODEL_CLASSES[kind])
    model = model_class.from_pretrained(resolve_model(name or recipe.model), **load_kwargs(load_spec(recipe)), **extra)
    if adapter:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise InputError(f"{adapter} holds no adapter_config.json (an SFT run's output_dir)")
        model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    return model


def peft_config(recipe: Recipe, task_type: str):
    """The PEFT config the method's definition names (the same keyword dict `adaptkit export` writes), or None."""
    spec = recipe.definition.peft(recipe, resolve_model(recipe.model))
    if spec is None:
        return None
    import peft

    name, kwargs = spec
    return getattr(peft, name)(task_type=task_type, **kwargs)


def prepare_adapters(recipe: Recipe, model, config, learning_rate: float, out: Path):
    """What a LoRA block asks beyond PEFT's config. LoRA+ (lora.loraplus_lr_ratio): the model wrapped now and PEFT's AdamW
    whose B matrices learn faster. PiSSA / OLoRA (lora.init): the initial adapter saved, so `finish` can convert the
    trained one into plain LoRA that loads on the original base (PEFT's path_initial_model_for_weight_conversion).
    Returns (model, the PEFT config still to apply, the trainer's `optimizers`, finish(trainer) after the model is saved)."""
    from peft import PeftModel

    block = getattr(recipe, "lora", None)
    adapted = config is not None or isinstance(model, PeftModel)
    converts = block is not None and block.init in ("pissa", "olora") and adapted
    if block is None or not adapted or not (block.loraplus_lr_ratio or converts):
        return model, config, (None, None), lambda trainer: None
    import shutil

    import torch
    from peft import get_peft_model

    if not isinstance(model, PeftModel):
        model, config = get_peft_model(model, config), None
    initial = out / LORA_INIT_DIR
    if converts:
        adapter = model.peft_config["default"]
        adapter.init_lora_weights = True  # saved as a plain LoRA start point, as PEFT's PiSSA/OLoRA docs do
        model.save_pretrained(str(initial))
        adapter.init_lora_weights = block.init
    optimizers = (None, None)
    if block.loraplus_lr_ratio:
        from peft.optimizers import create_loraplus_optimizer

        optimizers = (create_loraplus_optimizer(model=model, optimizer_cls=torch.optim.AdamW, lr=learning_rate,
                                                loraplus_lr_ratio=block.loraplus_lr_ratio, weight_decay=recipe.training.weight_decay), None)

    def finish(trainer) -> None:
        if converts and trainer.is_world_process_zero():
            trainer.model.save_pretrained(str(out), path_initial_model_for_weight_conversion=str(initial))
            shutil.rmtree(initial, ignore_errors=True)
    return model, config, optimizers, finish



_MLFLOW_OURS = None  # the tracking URI adaptkit set (a user's own is never replaced)


def with_precision(recipe: Recipe, kwargs: dict) -> dict:
    """A trainer config's keyword dict (as `adaptkit export` writes it) plus the precision flags for this device, and
    the token count behind metrics.json's tokens per second."""
    global _MLFLOW_OURS
    if "mlflow" in recipe.training.report_to and os.environ.get("MLFLOW_TRACKING_URI") in (None, "", _MLFLOW_OURS):
        # in the run folder, not ./mlruns; a database, as MLflow 3 requires (its file store is read-only "maintenance mode")
        folder = Path(kwargs["output_dir"]).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        _MLFLOW_OURS = os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    # One progress bar (the Trainer's: elapsed and ETA) on a terminal; in a log file, the loss lines without the bar.
    return {**kwargs, **_precision(recipe), "include_num_input_tokens_seen": "all", "disable_tqdm": not sys.stderr.isatty()}



def callbacks(stop_flag: dict, log_path: Path, stage: str | None = None):
    import json

    from transformers import TrainerCallback

    class Adaptkit(TrainerCallback):
        """Write the training log as it goes; on Ctrl-C, save a checkpoint and stop cleanly; keep the seconds trained
        so far in each checkpoint, so a resumed run reports the whole run's time."""

        clock = {"prior": 0.0, "started": 0.0, "from_step": 0}

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                seconds = self.clock["prior"] + time.perf_counter() - self.clock["started"]
                (folder / TIME_FILE).write_text(json.dumps({"seconds": round(seconds, 3)}) + "\n", encoding="utf-8")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                with open(log_path, "a", encoding="utf-8") as handle:
                    extra = {"stage": stage} if stage else {}
                    handle.write(json.dumps({**extra, "step": state.global_step, "epoch": state.epoch, **logs}) + "\n")

        def on_step_end(self, args, state, control, **kwargs):
            if stop_flag["stop"]:  # save now; the evaluation waits for the resumed run
                control.should_save = True
                control.should_evaluate = False
                control.should_training_stop = True
            return control

        def on_epoch_end(self, args, state, control, **kwargs):
            if stop_flag["stop"]:  # saved at the step that stopped: no evaluation, no second save
                control.should_evaluate = False
                control.should_save = False
            return control

    callback = Adaptkit()
    callback.clock = dict(Adaptkit.clock)  # this run's own
    return [callback]


TIME_FILE = "adaptkit_train_seconds.json"  # in each checkpoint: the training seconds up to it


def _clock(trainer) -> dict:
    return next((cb.clock for cb in trainer.callback_handler.callbacks if hasattr(cb, "clock")), {"prior": 0.0, "from_step": 0})



def load_tokenizer(recipe: Recipe, name: str | None = None):
    """The recipe's (or `name`'s) tokenizer, as the model loader finds the model."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(name or recipe.model), trust_remote_code=recipe.trust_remote_code)


def causal_tokenizer(name: str, trust: bool):
    """A causal LM's tokenizer with the special tokens TRL needs (BERT-style ones lack eos and bos; many lack pad)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name), trust_remote_code=trust)
    if tokenizer.eos_token is None and tokenizer.sep_token is not None:
        tokenizer.eos_token = tokenizer.sep_token
    if tokenizer.bos_token is None and tokenizer.cls_token is not None:
        tokenizer.bos_token = tokenizer.cls_token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer



def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def check_device(recipe: Recipe) -> None:
    """What the recipe asks of the machine, checked before any weights load: one clear line when it is missing."""
    import importlib.util

    t = recipe.training
    if t.optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        if not cuda_available():
            raise InputError(f"training.optimizer={t.optimizer} keeps states in 8 bits with bitsandbytes on a CUDA GPU; this machine "
                             "has none: use adamw_torch (or adafactor / sgd for less memory)")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise InputError(f"training.optimizer={t.optimizer} needs bitsandbytes: pip install bitsandbytes")
    if t.chunked_loss:
        if not cuda_available():
            raise InputError("training.chunked_loss uses Liger's fused linear cross-entropy, a CUDA kernel; this machine has no CUDA "
                             "GPU: set training.chunked_loss=false")
        if importlib.util.find_spec("liger_kernel") is None:
            raise InputError("training.chunked_loss needs liger-kernel: pip install liger-kernel")
    check_quantization(recipe)
    check_trackers(recipe)


TRACKERS = {"tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"), "mlflow": (("mlflow",), "mlflow"),
            "wandb": (("wandb",), "wandb")}


def check_trackers(recipe: Recipe) -> None:
    """Each training.report_to tracker is installed: said before weights load."""
    import importlib.util

    for name in recipe.training.report_to:
        modules, package = TRACKERS[name]
        if not any(importlib.util.find_spec(module) for module in modules):
            raise InputError(f"training.report_to: {name} is not installed: pip install {package}, or drop it from report_to")


def check_quantization(recipe: Recipe) -> None:
    if recipe.quantization != "none":
        if not cuda_available():
            raise InputError(f"lora.quantization={recipe.quantization} (QLoRA) needs a CUDA GPU and bitsandbytes; "
                             "this machine has none: use lora.quantization=none, or run where a GPU is")
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise InputError("lora.quantization needs bitsandbytes: pip install bitsandbytes")


@contextlib.contextmanager
def dataset_progress(show: bool):
    """The `datasets` library's progress bars (tokenizing, mapping) on or off for one run, as they were afterwards."""
    try:
        from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    except ImportError:  # the runner says what to install
        yield
        return

    before = are_progress_bars_disabled()
    (enable_progress_bars if show else disable_progress_bars)()
    try:
        yield
    finally:
        (disable_progress_bars if before else enable_progress_bars)()


def fit(trainer, stop: dict, resume: bool, show: bool = False):
    """Run trainer.train with Ctrl-C saving a checkpoint. Returns (result, seconds). `show`: the Trainer's progress bar
    and log lines go to stderr (the CLI's run); else nothing is printed (a library call)."""

    def on_interrupt(signum, frame):
        if stop["stop"]:  # a second Ctrl-C must not lose the checkpoint being written
            print("\nstill saving the checkpoint; it takes a moment", file=sys.stderr, flush=True)
            return
        stop["stop"] = True
        print("\nstopping: saving a checkpoint after this step (no evaluation) ...", file=sys.stderr, flush=True)

    from adaptkit.runners.resources import reset_peak

    previous = signal.signal(signal.SIGINT, on_interrupt) if _main_thread() else None
    reset_peak()
    clock = _clock(trainer)
    if resume:  # the seconds the interrupted part trained, kept in the checkpoint the Trainer resumes from
        from transformers.trainer_utils import get_last_checkpoint

        from adaptkit.rundir import set_aside_incomplete

        for line in set_aside_incomplete(Path(trainer.args.output_dir)):
            if show:
                print(f"note: {line}", file=sys.stderr, flush=True)
        last = get_last_checkpoint(trainer.args.output_dir)
        saved = Path(last) / TIME_FILE if last else None
        if saved is not None and saved.is_file():
            clock["prior"] = float(json.loads(saved.read_text(encoding="utf-8")).get("seconds", 0.0))
            clock["from_step"] = int(Path(last).name.split("-")[-1])
    if not show:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for printer in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(printer)
    started = clock["started"] = time.perf_counter()
    try:  # progress and log lines go to stderr: stdout carries the result
        with contextlib.redirect_stdout(sys.stderr):
            result = trainer.train(resume_from_checkpoint=True if resume else None)
    except OSError as exc:  # a full or unwritable disk while saving a checkpoint: what was kept, and how to go on
        from adaptkit.rundir import complete_checkpoints, set_aside_incomplete

        out = Path(trainer.args.output_dir)
        set_aside_incomplete(out)
        kept = complete_checkpoints(out)
        raise AdaptkitError(f"could not write to {out} ({exc.strerror or exc.__class__.__name__}): "
                            + (f"kept {kept[-1].name} (complete); free space, then run again with --resume" if kept else
                               "no complete checkpoint was kept; free space and run again")) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if stop["stop"]:
        raise Interrupted(trainer.state.global_step)
    return result, clock.get("prior", 0.0) + time.perf_counter() - started


def evaluate_untrained(trainer, show: bool) -> dict:
    """The model's evaluation before any training step, the base a run is compared with: printed only on stderr (and
    only when `show`), and kept out of the Trainer's log history, so the run's own evaluation is not mistaken for it."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    removed = [] if show else [trainer.pop_callback(printer) for printer in (PrinterCallback, ProgressCallback)]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = trainer.evaluate()
    finally:
        for printer in removed:
            if printer is not None:
                trainer.add_callback(printer)
        trainer.state.log_history = [entry for entry in trainer.state.log_history if "eval_loss" not in entry]
    return result


def evaluate(trainer) -> dict:
    """The finished model's evaluation: the one the Trainer logged at its last step when there is one (an epoch's end,
    or eval_every, falling on the last step), else a new one. Evaluating the same weights twice only costs time."""
    step = trainer.state.global_step
    logged = [entry for entry in trainer.state.log_history if "eval_loss" in entry and entry.get("step") == step]
    if logged:
        return {key: value for key, value in logged[-1].items() if key != "step"}
    with contextlib.redirect_stdout(sys.stderr):
        return trainer.evaluate()


def fit_evaluate_save(trainer, tokenizer, stop: dict, options: RunOptions, out: Path, has_eval: bool, finish=lambda trainer: None):
    """Train, evaluate and save on the main process: (result, seconds, evaluation), or None on other ranks. `finish`
    runs after the save (PiSSA/OLoRA: the adapter converted to plain LoRA)."""
    result, runtime = fit(trainer, stop, options.resume, options.show_training)
    evaluation = evaluate(trainer) if has_eval else {}
    if not trainer.is_world_process_zero():
        return None
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    finish(trainer)
    return result, runtime, evaluation


def train_metrics(trainer, result, runtime: float, model=None) -> dict:
    """The training figures every trainer reports, with what it used (`resources`, compared with the estimate later)."""
    from adaptkit.runners.resources import measure

    trainable, total = count_parameters(model if model is not None else trainer.model)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    args = trainer.args
    clock = _clock(trainer)
    global_batch = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    resumed = {"resumed": {"from_step": clock["from_step"], "seconds_before": round(clock["prior"], 3)}} if clock.get("prior") else {}
    if resumed:  # the Trainer's own figures cover only the resumed part: the whole run's are these
        runtime_s, rate = runtime, trainer.state.global_step * global_batch / max(runtime, 1e-9)
    else:
        runtime_s, rate = result.metrics.get("train_runtime", runtime), result.metrics.get("train_samples_per_second", 0.0)
    return {
        "runtime_s": round(runtime_s, 3),
        "samples_per_second": round(rate, 3),
        "steps": trainer.state.global_step,
        "global_batch": global_batch,
        **_spread(args.world_size),
        **resumed,
        "trainable_params": trainable, "total_params": total,
        "final_loss": round(losses[-1], 6) if losses else round(result.training_loss, 6),
        "resources": measure(trainer, runtime_s),
    }


def _spread(world_size: int) -> dict:
    """Over several processes: how many, on how many machines (the launcher's, as `run --num-machines` set it)."""
    import os

    from adaptkit.launch import MACHINES_ENV

    return {"processes": world_size, "machines": int(os.environ.get(MACHINES_ENV, "1"))} if world_size > 1 else {}


def seed_everything(seed: int) -> None:
    """Seed before any model is built: classifier heads and adapters are initialised at construction."""
    from transformers import set_seed

    set_seed(seed)


def start(recipe: Recipe) -> None:
    """What every trained method does first: quiet the libraries, check the machine has what the recipe asks (before
    any weights load), seed."""
    quiet_transformers()
    check_device(recipe)
    from adaptkit.models import check_reachable

    check_reachable(recipe.model)  # a hub id neither here nor reachable: one line now, not a minute of retries
    seed_everything(recipe.training.seed)


def run_trainer(recipe: Recipe, options: RunOptions, build, scores, extra: dict | None = None, labels: list | None = None):
    """The run skeleton of a one-stage method: build its trainer (`build(out, callbacks) -> (trainer, tokenizer,
    finish)`), fit, evaluate and save on the main process, score (`scores(trainer, tokenizer, evaluation) -> eval
    metrics`), and write the run's files. Returns the RunResult (None on other ranks)."""
    from adaptkit.runners.report import write_training_files

    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    stop = {"stop": False}
    trainer, tokenizer, finish = build(out, callbacks(stop, out / "train_log.jsonl"))
    finished = fit_evaluate_save(trainer, tokenizer, stop, options, out, trainer.eval_dataset is not None, finish)
    if finished is None:
        return None
    result, runtime, evaluation = finished
    metrics = {"method": recipe.method, "task": recipe.task, **(extra or {}), "train": train_metrics(trainer, result, runtime),
               "eval": scores(trainer, tokenizer, evaluation)}
    history = trainer.state.log_history
    return RunResult(metrics, history, artifacts=write_training_files(recipe, metrics, history, labels or [], out))



def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


