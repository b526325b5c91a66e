"""Preference tuning with TRL: DPO on pairs, and RLHF as policy optimisation (GRPOTrainer or RLOOTrainer) against a
reward model trained first (RewardTrainer), or against reward functions that check answers (verifiable rewards)."""

from __future__ import annotations

import json
from pathlib import Path

from adaptkit.errors import InputError
from adaptkit.methods.base import RunOptions, RunResult, trainer_kwargs
from adaptkit.methods.preference.rewards import CHECKS_ANSWERS
from adaptkit.methods.preference.recipe import policy_kwargs, reward_kwargs
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.core import (
    callbacks, causal_tokenizer, evaluate, fit, load_model, peft_config, prepare_adapters, run_trainer, start, train_metrics,
    with_precision,
)
from adaptkit.runners.data import Splits, response_text
from adaptkit.runners.report import loss_curve, reward_curve, write_training_files


def _pairs(recipe: Recipe, rows: list[dict]):
    from datasets import Dataset

    d = recipe.data
    return Dataset.from_dict({"prompt": [r[d.prompt_column] for r in rows], "chosen": [r[d.chosen_column] for r in rows],
                              "rejected": [r[d.rejected_column] for r in rows]})


def _feedback(recipe: Recipe, rows: list[dict], kind: str):
    """TRL's unpaired format (prompt, completion, label): rated responses as they are, or each pair split in two."""
    from datasets import Dataset

    from adaptkit.methods.preference.data import rating

    d = recipe.data
    if kind == "feedback":
        return Dataset.from_dict({"prompt": [r[d.prompt_column] for r in rows], "completion": [r[d.completion_column] for r in rows],
                                  "label": [rating(r[d.label_column]) for r in rows]})
    return Dataset.from_dict({"prompt": [r[d.prompt_column] for r in rows] * 2,
                              "completion": [r[d.chosen_column] for r in rows] + [r[d.rejected_column] for r in rows],
                              "label": [True] * len(rows) + [False] * len(rows)})


def _lora(recipe: Recipe):
    from peft import TaskType

    return peft_config(recipe, TaskType.CAUSAL_LM)


def trainer_classes(recipe: Recipe):
    """The algorithm's TRL config and trainer classes; one clear error when the installed TRL has moved or dropped them."""
    import importlib

    import trl

    spec = recipe.preference.spec
    found = []
    for ref in (spec.config, spec.trainer):
        module, _, name = ref.partition(":")
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            raise InputError(f"preference.algorithm={recipe.preference.algorithm}: {module}.{name} is not in the installed trl {trl.__version__} "
                             f"(TRL moves experimental trainers between releases): install the TRL adaptkit was tested with "
                             f"(trl 1.16) or pick another algorithm") from None
    return found


# ----------------------------------------------------------------------------------------------- DPO, KTO, ORPO, SimPO, CPO

def run_dpo(recipe: Recipe, splits: Splits, options: RunOptions) -> RunResult | None:
    """DPO, KTO, ORPO, SimPO or CPO (recipe.preference.algorithm) on the training core."""
    start(recipe)
    Config, Trainer = trainer_classes(recipe)
    if recipe.preference.spec.data == "feedback":
        def dataset(rows):
            return _feedback(recipe, rows, splits.kind)
    else:
        def dataset(rows):
            return _pairs(recipe, rows)

    def build(out: Path, callbacks):
        tokenizer = causal_tokenizer(recipe.model, recipe.trust_remote_code)
        try:  # train the SFT adapter further; the reference is the base with it switched off
            model = load_model(recipe, adapter=recipe.preference.starting_adapter)
        except InputError as exc:
            raise InputError(f"preference.starting_adapter: {exc}") from None
        config = None if recipe.preference.starting_adapter else _lora(recipe)
        args = Config(**with_precision(recipe, trainer_kwargs(recipe, out, bool(splits.eval))))
        model, config, optimizers, finish = prepare_adapters(recipe, model, config, recipe.training.learning_rate, out)
        trainer = Trainer(model=model, args=args, train_dataset=dataset(splits.train),
                          eval_dataset=dataset(splits.eval) if splits.eval else None, processing_class=tokenizer,
                          peft_config=config, callbacks=callbacks, optimizers=optimizers)
        return trainer, tokenizer, finish

    def scores(trainer, tokenizer, evaluation: dict) -> dict:
        margin = evaluation.get("eval_rewards/margins")
        if margin is None and "eval_rewards/chosen" in evaluation:  # KTO reports the two rewards apart
            margin = evaluation["eval_rewards/chosen"] - evaluation["eval_rewards/rejected"]
        from adaptkit.runners.predict import generate_and_score

        d = recipe.data
        answered = [{d.prompt_column: r[d.prompt_column], d.response_column: response_text(r[d.chosen_column])}  # the chosen reply
                    for r in splits.eval if isinstance(r.get(d.prompt_column), str) and d.chosen_column in r]
        return {"loss": evaluation.get("eval_loss"), "preference_accuracy": evaluation.get("eval_rewards/accuracies"),
                "reward_margin": margin, **generate_and_score(recipe, trainer.model, tokenizer, answered, options.out)}

    return run_trainer(recipe, options, build, scores, extra={"algorithm": recipe.preference.algorithm})


# ----------------------------------------------------------------------------------------------- RLHF

REWARD_DIR, POLICY_DIR, REWARD_METRICS = "reward_model", "policy", "reward_metrics.json"


def reward_done(out: Path) -> bool:
    return (out / REWARD_DIR / REWARD_METRICS).is_file()


def _reward_stage(recipe: Recipe, splits: Splits, options: RunOptions, resume: bool) -> dict:
    from peft import TaskType
    from trl import RewardConfig, RewardTrainer

    stage = recipe.rlhf.reward_model
    out = options.out / REWARD_DIR
    out.mkdir(parents=True, exist_ok=True)
    name = stage.model or recipe.model
    tokenizer = causal_tokenizer(name, recipe.trust_remote_code)
    model = load_model(recipe, "classifier", name=name, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    stop = {"stop": False}
    args = RewardConfig(**with_precision(recipe, reward_kwargs(recipe, out, bool(splits.eval))))
    # A 4/8-bit base cannot train its own weights: the reward model then trains a LoRA adapter on it (and its score head).
    config = peft_config(recipe, TaskType.SEQ_CLS) if recipe.quantization != "none" else None
    trainer = RewardTrainer(model=model, args=args, train_dataset=_pairs(recipe, splits.train),
                            eval_dataset=_pairs(recipe, splits.eval) if splits.eval else None, processing_class=tokenizer,
                            peft_config=config, callbacks=callbacks(stop, options.out / "train_log.jsonl", stage="reward"))
    result, runtime = fit(trainer, stop, resume, options.show_training)
    evaluation = evaluate(trainer) if splits.eval else {}
    metrics = {"train": train_metrics(trainer, result, runtime),
               "eval": {"loss": evaluation.get("eval_loss"), "accuracy": evaluation.get("eval_accuracy"),
                        "margin": evaluation.get("eval_margin")},
               "_log_history": trainer.state.log_history}
    if trainer.is_world_process_zero():
        trainer.save_model(str(out))
        tokenizer.save_pretrained(str(out))
        (out / REWARD_METRICS).write_text(json.dumps({k: v for k, v in metrics.items() if not k.startswith("_")}, indent=2) + "\n")
    return metrics


def _prompts(recipe: Recipe, rows: list[dict]):
    """The policy's prompts; with reward functions, every data column too (TRL hands them to the functions)."""
    from datasets import Dataset

    columns = {"prompt": [r[recipe.data.prompt_column] for r in rows]}
    if recipe.verifiable:
        for name in rows[0]:
            if name != recipe.data.prompt_column and name != "prompt" and all(name in r for r in rows):
                columns[name] = [r[name] for r in rows]
    return Dataset.from_dict(columns)


def reward_functions(recipe: Recipe) -> tuple[list, list[float]]:
    """rlhf.reward_functions as TRL reward functions and weights: built-ins configured, user functions imported (the CLI has
    checked the user's consent before any runner starts)."""
    from adaptkit.methods.preference.rewards import make
    from adaptkit.recipe.consent import import_function

    functions = [make(r.function, **r.settings()) if r.builtin else import_function(r.function, f"rlhf.reward_functions.{n}.function")
                 for n, r in enumerate(recipe.rlhf.reward_functions)]
    return functions, [r.weight for r in recipe.rlhf.reward_functions]


def _generate(policy, tokenizer, prompts: list, max_new_tokens: int) -> tuple[list[str], list[str]]:
    """Greedy completions for held-out prompts: (prompt texts, completions)."""
    import torch

    texts, completions = [], []
    policy.eval()
    with torch.no_grad():
        for prompt in prompts:
            text = prompt if isinstance(prompt, str) else tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            inputs = tokenizer(text, return_tensors="pt", return_token_type_ids=False).to(policy.device)
            output = policy.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            texts.append(text)
            completions.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    return texts, completions


class ModelScorer:
    """Held-out completions scored by the learned reward model."""

    def __init__(self, root: Path, recipe: Recipe):
        folder = root / REWARD_DIR
        self.tokenizer = causal_tokenizer(str(folder), recipe.trust_remote_code)
        if (folder / "adapter_config.json").is_file():  # a LoRA reward model on a quantized base
            base = recipe.rlhf.reward_model.model or recipe.model
            self.model = load_model(recipe, "classifier", name=base, num_labels=1, adapter=str(folder))
        else:
            self.model = load_model(recipe, "classifier", name=str(folder), num_labels=1)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.trainer_kwargs = {"reward_funcs": self.model, "reward_processing_classes": self.tokenizer}

    def score(self, texts: list[str], completions: list[str], rows: list[dict]) -> list[dict]:
        import torch

        samples = []
        with torch.no_grad():
            for text, completion in zip(texts, completions):
                scored = self.tokenizer(text + completion, return_tensors="pt", truncation=True, return_token_type_ids=False)
                samples.append({"reward": float(self.model(**scored.to(self.model.device)).logits[0, 0])})
        return samples


class FunctionScorer:
    """Held-out completions scored by the reward functions; correct when every answer check gives 1."""

    def __init__(self, recipe: Recipe):
        self.functions, self.weights = reward_functions(recipe)
        self.checks = [n for n, r in enumerate(recipe.rlhf.reward_functions) if r.function in CHECKS_ANSWERS]
        self.trainer_kwargs = {"reward_funcs": self.functions}
        self.prompt_column = recipe.data.prompt_column

    def score(self, texts: list[str], completions: list[str], rows: list[dict]) -> list[dict]:
        columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != self.prompt_column}
        extras = {"completion_ids": None, "trainer_state": None, "log_extra": lambda *a: None, "log_metric": lambda *a: None}
        per_function = [[0.0 if s is None else float(s) for s in f(prompts=texts, completions=completions, **columns, **extras)]
                        for f in self.functions]
        samples = []
        for i in range(len(completions)):
            scores = {getattr(f, "__name__", f"reward_{n}"): per_function[n][i] for n, f in enumerate(self.functions)}
            sample = {"reward": sum(w * per_function[n][i] for n, w in enumerate(self.weights)), "scores": scores}
            if self.checks:
                sample["correct"] = all(per_function[n][i] == 1.0 for n in self.checks)
            samples.append(sample)
        return samples


def _held_out(samples: list[dict]) -> dict:
    mean = sum(s["reward"] for s in samples) / len(samples)
    correct = [s["correct"] for s in samples if "correct" in s]
    return {"reward": mean, "correct": sum(correct) / len(correct) if correct else None}


def _task_scores(recipe: Recipe, rows: list[dict], prompts: list[str], before: list, after: list) -> dict:
    """The policy's held-out answers scored by the recipe's scorer against the rows' reference (the response, or the
    preferred answer), the policy before training as the base; {} where the rows hold no reference text."""
    from adaptkit.runners.scoring import delta, plain, task_scorer

    d = recipe.data
    column = next((c for c in (d.response_column, d.chosen_column) if rows and all(isinstance(r.get(c), str) for r in rows)), None)
    if recipe.verifiable or column is None:
        return {}
    scorer = task_scorer(recipe)
    references = [r[column] for r in rows]
    text = [c if isinstance(c, str) else " ".join(str(m.get("content", "")) for m in c) for c in after]
    base_text = [c if isinstance(c, str) else " ".join(str(m.get("content", "")) for m in c) for c in before]
    metrics = scorer(text, references, requests=prompts)
    base = plain(scorer(base_text, references, requests=prompts))
    return {**metrics, "base": {**base, "kind": "the policy before training"}, "delta": delta(metrics, base), "reference": column}


def _policy_stage(recipe: Recipe, splits: Splits, options: RunOptions, resume: bool) -> dict:
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    stage = recipe.rlhf.policy
    root = options.out
    out = options.policy_out or root / POLICY_DIR
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = causal_tokenizer(recipe.model, recipe.trust_remote_code)
    scorer = FunctionScorer(recipe) if recipe.verifiable else ModelScorer(root, recipe)
    policy = load_model(recipe)
    held_rows = (splits.eval or splits.train)[: stage.eval_prompts]
    held_prompts = [r[recipe.data.prompt_column] for r in held_rows]
    texts, completions_before = _generate(policy, tokenizer, held_prompts, stage.max_completion_length)
    samples_before = scorer.score(texts, completions_before, held_rows)
    Config, Trainer = (GRPOConfig, GRPOTrainer) if stage.algorithm == "grpo" else (RLOOConfig, RLOOTrainer)
    args = Config(**with_precision(recipe, policy_kwargs(recipe, out)))
    stop = {"stop": False}
    policy, config, optimizers, finish = prepare_adapters(recipe, policy, _lora(recipe), stage.learning_rate, out)
    trainer = Trainer(model=policy, args=args, train_dataset=_prompts(recipe, splits.train), processing_class=tokenizer,
                      peft_config=config, callbacks=callbacks(stop, root / "train_log.jsonl", stage="policy"),
                      optimizers=optimizers, **scorer.trainer_kwargs)
    result, runtime = fit(trainer, stop, resume, options.show_training)
    trained = trainer.model
    _, completions_after = _generate(trained, tokenizer, held_prompts, stage.max_completion_length)
    samples_after = scorer.score(texts, completions_after, held_rows)
    history = trainer.state.log_history
    kls = [e["kl"] for e in history if "kl" in e]
    train = train_metrics(trainer, result, runtime, model=trained)
    train["reward_per_step"] = [{"step": e["step"], "reward": round(e["reward"], 6)} for e in history if "reward" in e and "step" in e]
    metrics = {"train": train, "before": _held_out(samples_before), "after": _held_out(samples_after),
               "kl": kls[-1] if kls else None, "_log_history": history,
               "scored": _task_scores(recipe, held_rows, held_prompts, completions_before, completions_after)}
    if trainer.is_world_process_zero():
        trainer.save_model(str(out))
        tokenizer.save_pretrained(str(out))
        finish(trainer)
        with open(root / "samples.jsonl", "w", encoding="utf-8") as handle:
            for text, row, b, a, cb, ca in zip(texts, held_rows, samples_before, samples_after, completions_before, completions_after):
                line = {"prompt": text, "before": cb, "reward_before": b["reward"], "after": ca, "reward_after": a["reward"]}
                for key in ("correct", "scores"):
                    if key in b:
                        line.update({f"{key}_before": b[key], f"{key}_after": a[key]})
                handle.write(json.dumps(line) + "\n")
    return metrics


def run_rlhf(recipe: Recipe, splits: Splits, options: RunOptions) -> RunResult | None:
    """options.stage: all (reward, then policy), reward, or policy (reusing a finished reward stage). With reward
    functions (rlhf.reward_functions) there is no reward stage: the policy stage is the run."""
    stage = options.stage
    start(recipe)
    if recipe.verifiable and stage == "reward":
        raise InputError("this recipe rewards with functions (rlhf.reward_functions): there is no reward model to train; run it without --stage")
    root = options.out
    root.mkdir(parents=True, exist_ok=True)
    reward_metrics = None
    if stage in ("all", "reward") and not recipe.verifiable:
        if reward_done(root) and stage == "all" and options.resume:
            pass  # finished earlier: reuse it
        else:
            reward_metrics = _reward_stage(recipe, splits, options, resume=options.resume and any((root / REWARD_DIR).glob("checkpoint-*")))
    if stage == "reward":
        return RunResult({"method": recipe.method, "task": recipe.task, "train": {"reward_model": reward_metrics["train"]},
                          "eval": {"reward_model_accuracy": reward_metrics["eval"]["accuracy"]}},
                         reward_metrics["_log_history"], [f"{REWARD_DIR}/"], stage="reward")
    if not recipe.verifiable and not reward_done(root):
        raise InputError(f"--stage policy needs a trained reward model in {root / REWARD_DIR}: run --stage reward first")
    policy_resume = options.resume and any((options.policy_out or root / POLICY_DIR).glob("checkpoint-*"))
    policy = _policy_stage(recipe, splits, options, policy_resume)
    history = (reward_metrics or {}).get("_log_history", []) + policy["_log_history"]
    before, after = policy["before"], policy["after"]
    if recipe.verifiable:
        train = {"policy": policy["train"]}
        evaluation = {"reward_before": before["reward"], "reward_after": after["reward"]}
        if before["correct"] is not None:
            evaluation.update(correct_before=before["correct"], correct_after=after["correct"], correct=after["correct"],
                              primary_metric="correct", base={"correct": before["correct"], "kind": "the policy before training"},
                              delta={"correct": round(after["correct"] - before["correct"], 6)})
        evaluation["kl"] = policy["kl"]
        reward_load = ""
    else:
        saved = json.loads((root / REWARD_DIR / REWARD_METRICS).read_text())
        train = {"reward_model": saved["train"], "policy": policy["train"]}
        evaluation = {"reward_model_accuracy": saved["eval"]["accuracy"], "reward_before": before["reward"],
                      "reward_after": after["reward"], "kl": policy["kl"], **policy["scored"]}
        reward_load = (f"\n# the reward model:\nfrom transformers import AutoModelForSequenceClassification\n"
                       f"reward_model = AutoModelForSequenceClassification.from_pretrained({recipe.output_dir + '/' + REWARD_DIR!r})")
    metrics = {"method": recipe.method, "task": recipe.task, "train": train, "eval": evaluation}
    if not _main_process():
        return None
    files = write_training_files(recipe, metrics, history, [], root, where=POLICY_DIR, extra_load=reward_load,
                                 train=policy["train"], curves=(loss_curve, reward_curve))
    return RunResult(metrics, history, files + ["samples.jsonl", f"{POLICY_DIR}/"] + ([] if recipe.verifiable else [f"{REWARD_DIR}/"]))


def _main_process() -> bool:
    """Only the main process writes the run's files."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)
