"""Preference tuning with TRL: DPO on pairs, and RLHF as a reward model (RewardTrainer) then policy optimisation
(GRPOTrainer or RLOOTrainer with that reward model as the reward function)."""

from __future__ import annotations

import json
from pathlib import Path

from adaptkit.errors import InputError
from adaptkit.methods.base import RunOptions, RunResult, trainer_kwargs
from adaptkit.methods.preference import policy_kwargs, reward_kwargs
from adaptkit.models import resolve_model
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Splits
from adaptkit.runners.report import loss_curve, reward_curve, write_training_files
from adaptkit.runners.train import (
    callbacks, check_quantization, causal_tokenizer, evaluate, fit, fit_evaluate_save, peft_config, seed_everything, train_metrics,
    with_precision,
)


def _pairs(recipe: Recipe, rows: list[dict]):
    from datasets import Dataset

    d = recipe.data
    return Dataset.from_dict({"prompt": [r[d.prompt_column] for r in rows], "chosen": [r[d.chosen_column] for r in rows],
                              "rejected": [r[d.rejected_column] for r in rows]})


def _lora(recipe: Recipe):
    from peft import TaskType

    return peft_config(recipe, TaskType.CAUSAL_LM)


# ----------------------------------------------------------------------------------------------- DPO

def run_dpo(recipe: Recipe, splits: Splits, options: RunOptions) -> RunResult | None:
    import transformers
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    transformers.logging.set_verbosity_error()
    check_quantization(recipe)
    seed_everything(recipe.training.seed)
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    stop = {"stop": False}
    tokenizer = causal_tokenizer(recipe.model, recipe.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(recipe.model), trust_remote_code=recipe.trust_remote_code)
    config = _lora(recipe)
    if recipe.dpo.starting_adapter:
        from peft import PeftModel

        if not (Path(recipe.dpo.starting_adapter) / "adapter_config.json").is_file():
            raise InputError(f"dpo.starting_adapter: {recipe.dpo.starting_adapter} holds no adapter_config.json (an SFT run's output_dir)")
        model = PeftModel.from_pretrained(model, recipe.dpo.starting_adapter, is_trainable=True)
        config = None  # train the SFT adapter further; the reference is the base with it switched off
    args = DPOConfig(**with_precision(recipe, trainer_kwargs(recipe, out, bool(splits.eval))))
    trainer = DPOTrainer(model=model, args=args, train_dataset=_pairs(recipe, splits.train),
                         eval_dataset=_pairs(recipe, splits.eval) if splits.eval else None, processing_class=tokenizer,
                         peft_config=config, callbacks=callbacks(stop, out / "train_log.jsonl"))
    finished = fit_evaluate_save(trainer, tokenizer, stop, options, out, bool(splits.eval))
    if finished is None:
        return None
    result, runtime, evaluation = finished
    metrics = {
        "method": recipe.method, "task": recipe.task, "train": train_metrics(trainer, result, runtime),
        "eval": {"loss": evaluation.get("eval_loss"), "preference_accuracy": evaluation.get("eval_rewards/accuracies"),
                 "reward_margin": evaluation.get("eval_rewards/margins")},
    }
    history = trainer.state.log_history
    return RunResult(metrics, history, write_training_files(recipe, metrics, history, [], out))


# ----------------------------------------------------------------------------------------------- RLHF

REWARD_DIR, POLICY_DIR, REWARD_METRICS = "reward_model", "policy", "reward_metrics.json"


def reward_done(out: Path) -> bool:
    return (out / REWARD_DIR / REWARD_METRICS).is_file()


def _reward_stage(recipe: Recipe, splits: Splits, options: RunOptions, resume: bool) -> dict:
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    stage = recipe.rlhf.reward
    out = options.out / REWARD_DIR
    out.mkdir(parents=True, exist_ok=True)
    name = stage.model or recipe.model
    tokenizer = causal_tokenizer(name, recipe.trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model(name), num_labels=1, trust_remote_code=recipe.trust_remote_code)
    model.config.pad_token_id = tokenizer.pad_token_id
    stop = {"stop": False}
    args = RewardConfig(**with_precision(recipe, reward_kwargs(recipe, out, bool(splits.eval))))
    trainer = RewardTrainer(model=model, args=args, train_dataset=_pairs(recipe, splits.train),
                            eval_dataset=_pairs(recipe, splits.eval) if splits.eval else None, processing_class=tokenizer,
                            callbacks=callbacks(stop, options.out / "train_log.jsonl", stage="reward"))
    result, runtime = fit(trainer, stop, resume)
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
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [r[recipe.data.prompt_column] for r in rows]})


def _score(policy, reward_model, tokenizer, reward_tokenizer, prompts: list, max_new_tokens: int) -> tuple[float, list[dict]]:
    """Greedy completions for held-out prompts, scored by the reward model: (mean reward, samples)."""
    import torch

    samples = []
    policy.eval()
    with torch.no_grad():
        for prompt in prompts:
            text = prompt if isinstance(prompt, str) else tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            inputs = tokenizer(text, return_tensors="pt", return_token_type_ids=False).to(policy.device)
            output = policy.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            completion = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            scored = reward_tokenizer(text + completion, return_tensors="pt", truncation=True, return_token_type_ids=False).to(reward_model.device)
            reward = float(reward_model(**scored).logits[0, 0])
            samples.append({"prompt": text, "completion": completion, "reward": reward})
    return sum(s["reward"] for s in samples) / len(samples), samples


def _policy_stage(recipe: Recipe, splits: Splits, options: RunOptions, resume: bool) -> dict:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    stage = recipe.rlhf.policy
    root = options.out
    out = options.policy_out or root / POLICY_DIR
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = causal_tokenizer(recipe.model, recipe.trust_remote_code)
    reward_tokenizer = causal_tokenizer(str(root / REWARD_DIR), recipe.trust_remote_code)
    reward_model = AutoModelForSequenceClassification.from_pretrained(str(root / REWARD_DIR), num_labels=1)
    reward_model.config.pad_token_id = reward_tokenizer.pad_token_id
    policy = AutoModelForCausalLM.from_pretrained(resolve_model(recipe.model), trust_remote_code=recipe.trust_remote_code)
    held_out = [r[recipe.data.prompt_column] for r in (splits.eval or splits.train)][: stage.eval_prompts]
    before, samples_before = _score(policy, reward_model, tokenizer, reward_tokenizer, held_out, stage.max_completion_length)
    Config, Trainer = (GRPOConfig, GRPOTrainer) if stage.algorithm == "grpo" else (RLOOConfig, RLOOTrainer)
    args = Config(**with_precision(recipe, policy_kwargs(recipe, out)))
    stop = {"stop": False}
    trainer = Trainer(model=policy, reward_funcs=reward_model, args=args, train_dataset=_prompts(recipe, splits.train),
                      processing_class=tokenizer, reward_processing_classes=reward_tokenizer, peft_config=_lora(recipe),
                      callbacks=callbacks(stop, root / "train_log.jsonl", stage="policy"))
    result, runtime = fit(trainer, stop, resume)
    trained = trainer.model
    after, samples_after = _score(trained, reward_model, tokenizer, reward_tokenizer, held_out, stage.max_completion_length)
    kls = [e["kl"] for e in trainer.state.log_history if "kl" in e]
    metrics = {"train": train_metrics(trainer, result, runtime, model=trained), "reward_before": before, "reward_after": after,
               "kl": kls[-1] if kls else None, "_log_history": trainer.state.log_history}
    if trainer.is_world_process_zero():
        trainer.save_model(str(out))
        tokenizer.save_pretrained(str(out))
        with open(root / "samples.jsonl", "w", encoding="utf-8") as handle:
            for b, a in zip(samples_before, samples_after):
                handle.write(json.dumps({"prompt": b["prompt"], "before": b["completion"], "reward_before": b["reward"],
                                         "after": a["completion"], "reward_after": a["reward"]}) + "\n")
    return metrics


def run_rlhf(recipe: Recipe, splits: Splits, options: RunOptions) -> RunResult | None:
    """options.stage: all (reward, then policy), reward, or policy (reusing a finished reward stage)."""
    stage = options.stage
    import transformers

    transformers.logging.set_verbosity_error()
    check_quantization(recipe)
    seed_everything(recipe.training.seed)
    root = options.out
    root.mkdir(parents=True, exist_ok=True)
    reward_metrics = None
    if stage in ("all", "reward"):
        if reward_done(root) and stage == "all" and options.resume:
            pass  # finished earlier: reuse it
        else:
            reward_metrics = _reward_stage(recipe, splits, options, resume=options.resume and any((root / REWARD_DIR).glob("checkpoint-*")))
    if stage == "reward":
        return RunResult({"method": recipe.method, "task": recipe.task, "train": {"reward_model": reward_metrics["train"]},
                          "eval": {"reward_model_accuracy": reward_metrics["eval"]["accuracy"]}},
                         reward_metrics["_log_history"], [f"{REWARD_DIR}/"], stage="reward")
    if not reward_done(root):
        raise InputError(f"--stage policy needs a trained reward model in {root / REWARD_DIR}: run --stage reward first")
    saved = json.loads((root / REWARD_DIR / REWARD_METRICS).read_text())
    policy_resume = options.resume and any((options.policy_out or root / POLICY_DIR).glob("checkpoint-*"))
    policy = _policy_stage(recipe, splits, options, policy_resume)
    history = (reward_metrics or {}).get("_log_history", []) + policy["_log_history"]
    metrics = {
        "method": recipe.method, "task": recipe.task,
        "train": {"reward_model": saved["train"], "policy": policy["train"]},
        "eval": {"reward_model_accuracy": saved["eval"]["accuracy"], "reward_before": policy["reward_before"],
                 "reward_after": policy["reward_after"], "kl": policy["kl"]},
    }
    if not _main_process():
        return None
    reward_load = (f"\n# the reward model:\nfrom transformers import AutoModelForSequenceClassification\n"
                   f"reward_model = AutoModelForSequenceClassification.from_pretrained({recipe.output_dir + '/' + REWARD_DIR!r})")
    files = write_training_files(recipe, metrics, history, [], root, where=POLICY_DIR, extra_load=reward_load,
                                 train=policy["train"], curves=(loss_curve, reward_curve))
    return RunResult(metrics, history, files + ["samples.jsonl", f"{REWARD_DIR}/", f"{POLICY_DIR}/"])


def _main_process() -> bool:
    """Only the main process writes the run's files."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)
