"""Preference tuning with TRL: `dpo` on chosen/rejected pairs, and `rlhf`: a policy optimised (GRPOTrainer or
RLOOTrainer) against a reward model trained first on the pairs (RewardTrainer), or against reward functions that check
answers (RL from verifiable rewards: prompts with reference answers, no pairs, no reward model)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Optional

from pydantic import Field, field_validator, model_validator

from adaptkit.errors import InputError
from adaptkit.methods.base import MethodDef, RecipeBase, Strict, input_path, literal, training_kwargs
from adaptkit.methods.registry import register
from adaptkit.methods.preference.rewards import BUILTINS
from adaptkit.methods.supervised.recipe import LoraConfigBlock, lora_lost, lora_peft, lora_setup, lora_trl

DPO_LOSSES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down")
PREFERENCE = dict(summary="adaptkit.methods.preference.dryrun:data_summary", tasks=("causal_lm",),
                  adapters=("lora", "none"))


@dataclass(frozen=True)
class Algorithm:
    """A preference-optimisation algorithm a TRL trainer runs. Adding one is a row in ALGORITHMS (plus a recipe)."""

    trainer: str  # "module:Class" of the TRL trainer and its config; a class TRL has moved is one clear error
    config: str
    data: str  # pairs (prompt, chosen, rejected) | feedback (prompt, completion, label: thumbs up/down; pairs are split)
    reference: bool  # keeps a reference model (the base with adapters off, or a frozen copy)
    fields: Callable  # PreferenceBlock -> the config's own fields
    source: str


ALGORITHMS = {
    "dpo": Algorithm("trl:DPOTrainer", "trl:DPOConfig", "pairs", True, lambda b: {"beta": b.beta, "loss_type": b.loss_type},
                     "Rafailov et al., arXiv:2305.18290"),
    "kto": Algorithm("trl:KTOTrainer", "trl:KTOConfig", "feedback", True,
                     lambda b: {"beta": b.beta, "desirable_weight": b.desirable_weight, "undesirable_weight": b.undesirable_weight},
                     "Ethayarajh et al., arXiv:2402.01306"),
    "orpo": Algorithm("trl.experimental.orpo:ORPOTrainer", "trl.experimental.orpo:ORPOConfig", "pairs", False,
                      lambda b: {"beta": b.beta}, "Hong et al., arXiv:2403.07691"),
    "simpo": Algorithm("trl.experimental.cpo:CPOTrainer", "trl.experimental.cpo:CPOConfig", "pairs", False,
                       lambda b: {"loss_type": "simpo", "cpo_alpha": 0.0, "beta": b.beta, "simpo_gamma": b.simpo_gamma},
                       "Meng et al., arXiv:2405.14734"),
    "cpo": Algorithm("trl.experimental.cpo:CPOTrainer", "trl.experimental.cpo:CPOConfig", "pairs", False,
                     lambda b: {"beta": b.beta}, "Xu et al., arXiv:2401.08417"),
}


class PreferenceBlock(Strict):
    """How the policy learns from preferences: the algorithm and its settings."""

    algorithm: Literal[tuple(ALGORITHMS)] = Field(  # type: ignore[valid-type]
        "dpo", description="dpo; kto (unpaired thumbs-up/down feedback); orpo, simpo, cpo (no reference model)")
    beta: float = Field(0.1, gt=0, description="dpo, kto: pull toward the reference (higher: stay closer); orpo: the odds-ratio "
                                               "weight (lambda); simpo: the reward scale (the paper uses 2-2.5); cpo: the loss scale")
    loss_type: Literal[DPO_LOSSES] = Field("sigmoid", description="dpo: the loss variant (TRL's loss_type)")  # type: ignore[valid-type]
    desirable_weight: float = Field(1.0, gt=0, description="kto: weight of thumbs-up examples (raise it when they are the fewer)")
    undesirable_weight: float = Field(1.0, gt=0, description="kto: weight of thumbs-down examples")
    simpo_gamma: float = Field(0.5, ge=0, description="simpo: the target reward margin (gamma / beta in TRL's CPOConfig)")
    reference: Literal["adapters_off", "copy"] = Field(
        "adapters_off", description="dpo, kto: adapters_off: the base with LoRA disabled (no second copy); copy: full weights with a frozen copy")
    starting_adapter: Optional[str] = input_path("a LoRA adapter from an SFT run to start from (folder)", default=None)

    @model_validator(mode="after")
    def _fields_of_the_algorithm(self):
        own = {"loss_type": ("dpo",), "desirable_weight": ("kto",), "undesirable_weight": ("kto",), "simpo_gamma": ("simpo",),
               "reference": tuple(a for a, d in ALGORITHMS.items() if d.reference)}
        for name, algorithms in own.items():
            if getattr(self, name) != type(self).model_fields[name].default and self.algorithm not in algorithms:
                raise ValueError(f"`preference.{name}` is for {', '.join(algorithms)}, not {self.algorithm}")
        return self

    @property
    def spec(self) -> Algorithm:
        return ALGORITHMS[self.algorithm]


class RewardStage(Strict):
    model: Optional[str] = input_path("reward model base (default: the recipe's model)", "model", default=None)
    epochs: float = Field(1.0, gt=0, description="passes over the preference pairs")
    learning_rate: float = Field(5e-5, gt=0, lt=1, description="reward model learning rate")
    batch_size: int = Field(8, ge=1, description="pairs per micro-batch")
    max_steps: Optional[int] = Field(None, ge=1, description="stop after this many steps")


class PolicyStage(Strict):
    algorithm: Literal["grpo", "rloo"] = Field("grpo", description="policy optimiser (TRL's GRPOTrainer or RLOOTrainer; PPO is not in the installed TRL)")
    num_generations: int = Field(4, ge=2, description="samples per prompt (the group the advantage is computed over)")
    max_completion_length: int = Field(64, ge=1, description="tokens generated per sample")
    temperature: float = Field(0.9, gt=0, description="sampling temperature for rollouts")
    kl_coef: float = Field(0.04, ge=0, description="KL penalty to the reference policy (TRL's beta)")
    max_steps: int = Field(50, ge=1, description="policy optimisation steps (the step budget)")
    learning_rate: float = Field(1e-5, gt=0, lt=1, description="policy learning rate")
    batch_size: int = Field(4, ge=1, description="prompts x generations per micro-batch; a multiple of num_generations")
    eval_prompts: int = Field(16, ge=1, description="held-out prompts scored before and after training")


class RewardFunction(Strict):
    function: str = Field(description="a built-in (exact_match, numeric, regex, json_valid, length_penalty) or your own as "
                                      "module:function or path/to/file.py:function, with TRL's reward_funcs signature")
    weight: float = Field(1.0, description="its weight in the summed reward")
    column: str = Field("answer", description="exact_match, numeric: the data column holding the reference answer")
    tolerance: float = Field(1e-6, ge=0, description="numeric: absolute or relative tolerance")
    pattern: Optional[str] = Field(None, description="regex: the pattern a well-formed completion contains (re.search)")
    max_chars: int = Field(400, ge=1, description="length_penalty: characters allowed before the penalty starts")

    @field_validator("function")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in BUILTINS and ":" not in value:
            raise ValueError(f"`{value}` is neither a built-in reward ({', '.join(BUILTINS)}) nor module:function")
        return value

    @model_validator(mode="after")
    def _pattern(self):
        if self.function == "regex":
            if not self.pattern:
                raise ValueError("the regex reward needs `pattern`")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern `{self.pattern}` is not a regular expression: {exc}") from None
        return self

    @property
    def builtin(self) -> bool:
        return self.function in BUILTINS

    def settings(self) -> dict:
        """The built-in's settings (what its factory takes)."""
        return {"column": self.column, "tolerance": self.tolerance, "pattern": self.pattern, "max_chars": self.max_chars}


class RLHFBlock(Strict):
    reward_model: RewardStage = Field(default_factory=RewardStage, description="the reward model trained on preference pairs "
                                                                               "first (when there are no `reward_functions`)")
    reward_functions: list[RewardFunction] = Field(
        default_factory=list, description="reward functions instead of a reward model (RL from verifiable rewards): "
                                          "prompts with reference answers, no pairs")
    policy: PolicyStage = Field(default_factory=PolicyStage)

    @model_validator(mode="after")
    def _one_reward(self):
        if self.reward_functions and self.reward_model != RewardStage():
            raise ValueError("give the policy one kind of reward: `reward_model` (trained on pairs) or `reward_functions`")
        return self


class PolicyRecipe(RecipeBase):
    """A causal LM policy trained on preferences, with LoRA on it or all its weights."""

    lora: Optional[LoraConfigBlock] = Field(None, description="LoRA on the policy (none: all weights train)")

    @property
    def adapter(self) -> str:
        return "lora" if self.lora else "none"


class DpoRecipe(PolicyRecipe):
    method: Literal["dpo"] = Field(description="direct preference optimisation on chosen/rejected pairs")
    preference: Optional[PreferenceBlock] = Field(None, description="the preference algorithm (dpo, kto, orpo, simpo, cpo) and "
                                                                    "its settings")

    REQUIRED = ("preference",)
    RENAMED = {"dpo": "preference"}

    def check(self) -> None:
        if not self.preference.spec.reference:
            return  # orpo, simpo, cpo: no reference model, LoRA or all weights
        if self.preference.reference == "adapters_off" and self.lora is None:
            raise ValueError("`preference.reference: adapters_off` needs a `lora` block (or set `preference.reference: copy` for full-weight DPO)")
        if self.preference.reference == "copy" and self.lora is not None:
            raise ValueError("`preference.reference: copy` is full-weight DPO: remove the `lora` block, or use `preference.reference: adapters_off`")


class RlhfRecipe(PolicyRecipe):
    method: Literal["rlhf"] = Field(description="a reward model, then the policy optimised against it")
    rlhf: Optional[RLHFBlock] = Field(None, description="RLHF stages: reward model, then policy optimisation")

    REQUIRED = ("rlhf",)
    RENAMED = {"rlhf.reward": "rlhf.reward_model", "rlhf.rewards": "rlhf.reward_functions"}

    def check(self) -> None:
        if self.rlhf.policy.batch_size % self.rlhf.policy.num_generations:
            raise ValueError("`rlhf.policy.batch_size` must be a multiple of `rlhf.policy.num_generations`")

    @property
    def verifiable(self) -> bool:
        """Reward functions (RL from verifiable rewards) instead of a learned reward model."""
        return bool(self.rlhf.reward_functions)


def _lora(recipe) -> dict:
    return lora_setup(recipe.lora) if recipe.lora else {"adapter": "none"}


def _peft(recipe, model: str):
    return lora_peft(recipe.lora) if recipe.lora else None


def _dpo_export(recipe: DpoRecipe) -> tuple[str, dict]:
    if recipe.preference.starting_adapter:
        raise InputError("--format script does not yet start DPO from an SFT adapter (preference.starting_adapter): run it with adaptkit run")
    spec = recipe.preference.spec
    module, _, trainer = spec.trainer.partition(":")
    config = spec.config.partition(":")[2]
    return "causal_lm.py.tmpl", {"__TRL_IMPORT__": f"from {module} import {config}, {trainer}", "__CONFIG__": config,
                                 "__TRAINER__": trainer, "__PREFERENCE__": repr(spec.data)}


def _rlhf_export(recipe: RlhfRecipe) -> tuple[str, dict]:
    """The two-stage script (the same RewardConfig and GRPO/RLOO config dicts the runner builds), or with reward
    functions, the one-stage script carrying the built-in rewards' source."""
    out, p = Path(recipe.output_dir), recipe.rlhf.policy
    if recipe.quantization != "none" and not recipe.verifiable:
        raise InputError("--format script does not yet write the LoRA reward model a quantized RLHF run trains: run it with adaptkit run")
    if recipe.lora and (recipe.lora.loraplus_lr_ratio or recipe.lora.init != "default"):
        raise InputError("--format script does not yet write LoRA+ or a PiSSA/OLoRA start for the RL policy: run it with adaptkit run")
    trainer = "GRPO" if p.algorithm == "grpo" else "RLOO"
    if recipe.verifiable:
        import inspect

        from adaptkit.methods.preference import rewards

        source = inspect.getsource(rewards).split('"""', 2)[2].strip()  # without the module docstring
        source = source.replace("from __future__ import annotations\n", "")
        return "rlvr.py.tmpl", {
            "__EVAL_PROMPTS__": repr(p.eval_prompts), "__MAX_COMPLETION__": repr(p.max_completion_length),
            "__REWARDS__": repr([(r.function, r.settings() if r.builtin else {}, r.weight) for r in recipe.rlhf.reward_functions]),
            "__REWARDS_SOURCE__": source, "__POLICY_ARGS__": literal(policy_kwargs(recipe, out / "policy")),
            "__POLICY_CONFIG__": f"{trainer}Config", "__POLICY_TRAINER__": f"{trainer}Trainer"}
    return "rlhf.py.tmpl", {
        "__REWARD_BASE__": repr(recipe.rlhf.reward_model.model or recipe.model), "__EVAL_PROMPTS__": repr(p.eval_prompts),
        "__MAX_COMPLETION__": repr(p.max_completion_length), "__REWARD_ARGS__": literal(reward_kwargs(recipe, out / "reward_model", bool(recipe.data.eval or recipe.data.eval_fraction))),
        "__POLICY_ARGS__": literal(policy_kwargs(recipe, out / "policy")), "__POLICY_CONFIG__": f"{trainer}Config",
        "__POLICY_TRAINER__": f"{trainer}Trainer"}


def _dpo_trl(recipe: DpoRecipe) -> tuple[str, dict, list] | None:
    if recipe.preference.algorithm != "dpo":
        return None  # the TRL command line has `trl dpo` and `trl kto` only; the script export covers the rest
    lost = ([f"preference.starting_adapter={recipe.preference.starting_adapter}: the TRL CLI cannot start from an adapter; merge it first"]
            if recipe.preference.starting_adapter else [])
    return "dpo", {**lora_trl(recipe.lora), "beta": recipe.preference.beta, "loss_type": recipe.preference.loss_type}, lost + lora_lost(recipe.lora)


def reward_kwargs(recipe: RlhfRecipe, out: Path, has_eval: bool) -> dict:
    """RewardConfig for the first stage: the training block, with the reward stage's own epochs, rate, batch and steps."""
    r = recipe.rlhf.reward_model
    return {"max_length": recipe.training.max_length,
            **training_kwargs(recipe, out, has_eval, epochs=r.epochs, learning_rate=r.learning_rate, batch_size=r.batch_size,
                              max_steps=r.max_steps)}


def policy_kwargs(recipe: RlhfRecipe, out: Path) -> dict:
    """GRPOConfig / RLOOConfig for the second stage."""
    p = recipe.rlhf.policy
    args = training_kwargs(recipe, out, False, learning_rate=p.learning_rate, batch_size=p.batch_size, max_steps=p.max_steps)
    args.update(per_device_eval_batch_size=p.batch_size, num_generations=p.num_generations, max_completion_length=p.max_completion_length,
                temperature=p.temperature, beta=p.kl_coef)
    return args


def _emit(block: dict):
    """advise --emit-recipe: LoRA on all linear layers over the preference pairs, and this method's block."""
    def emit(profile, context) -> dict:
        fields = context.training_data("pairs")
        fields["training"].update(learning_rate=5e-5, epochs=1)
        fields["lora"] = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear", "quantization": "none"}
        if profile.is_base_model:
            context.notes.append("the model is a base model: instruction-tune it first (recipe lora_sft), then start from that adapter")
        return {**fields, **block}
    return emit


def _emit_preference(profile, context) -> dict:
    """DPO on pairs; KTO when the feedback is unpaired ratings; ORPO (one stage, no reference) for a base model. Closed
    weights: none (a vendor's preference job is not written yet; the vendor SFT job of lora_adapters is)."""
    if profile.weight_access != "open":
        return None
    if profile.preference_pairs < 500 and profile.feedback_labels >= 100:
        fields = _emit({"preference": {"algorithm": "kto", "beta": 0.1, "reference": "adapters_off"}})(profile, context)
        if profile.train_data:
            context.notes.append("KTO data: prompt, completion and label (true/false) columns; name them with data.completion_column "
                                 "and data.label_column")
        else:
            fields["data"].update(train=context.demo("examples/data/feedback_train.jsonl"), eval=context.demo("examples/data/feedback_eval.jsonl"))
        return fields
    if profile.is_base_model:
        fields = _emit({"preference": {"algorithm": "orpo", "beta": 0.1}})(profile, context)
        context.notes[:] = [n for n in context.notes if "instruction-tune it first" not in n]
        context.notes.append("the model is a base model: ORPO learns instruction following and the preferences in one stage")
        return fields
    return _emit({"preference": {"algorithm": "dpo", "beta": 0.1, "loss_type": "sigmoid", "reference": "adapters_off"}})(profile, context)


def _emit_rl(profile, context) -> dict:
    """RL from verifiable rewards when the answers are checkable and there are no pairs; else a reward model on the pairs."""
    if not (profile.rl_from_rewards and profile.preference_pairs == 0):
        return _emit({"rlhf": {"reward_model": {"epochs": 1, "learning_rate": 5e-5, "batch_size": 8},
                               "policy": {"algorithm": "grpo", "num_generations": 4, "max_steps": 200, "batch_size": 8}}})(profile, context)
    fields = context.training_data("answers")
    fields["training"].update(learning_rate=1e-5, epochs=1)
    fields["lora"] = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear", "quantization": "none"}
    if profile.train_data:
        context.notes.append("rlhf.reward_functions: numeric checks the number in the `answer` column; for text answers use exact_match, for "
                             "code your own module:function (run with --allow-code)")
    fields["rlhf"] = {"reward_functions": [{"function": "numeric", "column": "answer", "weight": 1.0},
                                  {"function": "length_penalty", "max_chars": 600, "weight": 0.1}],
                      "policy": {"algorithm": "grpo", "num_generations": 4, "max_steps": 200, "batch_size": 8}}
    return fields


register(MethodDef(
    id="dpo", recipe=DpoRecipe, objective="preference", runner="adaptkit.methods.preference.runner:run_dpo",
    metrics=("preference_accuracy", "neg_eval_loss"),
    setup=lambda recipe: {**_lora(recipe), "dpo_reference": "none" if not recipe.preference.spec.reference else
                          "copy" if recipe.preference.reference == "copy" else "auto"},
    peft=_peft, trainer=lambda recipe: {**recipe.preference.spec.fields(recipe.preference), "max_length": recipe.training.max_length},
    to_lora=lambda recipe: ["preference.reference=adapters_off"] if recipe.preference.spec.reference else [],
    export=_dpo_export, trl=_dpo_trl, data="adaptkit.methods.preference.data:load_pairs", emit=_emit_preference,
    aliases=(("kto", ""), ("orpo", "--dpo-reference none"), ("simpo", "--dpo-reference none"), ("cpo", "--dpo-reference none")),
    **PREFERENCE))
register(MethodDef(
    id="rlhf", recipe=RlhfRecipe, objective="rl", runner="adaptkit.methods.preference.runner:run_rlhf",
    metrics=("correct_after", "reward_model_accuracy"), data="adaptkit.methods.preference.data:load_rl",
    setup=lambda recipe: {**_lora(recipe), "rl_algorithm": recipe.rlhf.policy.algorithm,
                          "rollouts_per_prompt": recipe.rlhf.policy.num_generations,
                          "generation_tokens": recipe.rlhf.policy.max_completion_length,
                          "batch_size": max(1, recipe.rlhf.policy.batch_size // recipe.rlhf.policy.num_generations),
                          **({"reward_params": 0} if recipe.verifiable else {})},
    code=lambda recipe: [f"rlhf.reward_functions.{n}.function `{r.function}`" for n, r in enumerate(recipe.rlhf.reward_functions) if not r.builtin],
    peft=_peft, export=_rlhf_export, stages=("reward", "policy"),
    emit=_emit_rl, aliases=(("ppo", ""), ("grpo", "--rl-algorithm grpo"), ("rloo", "--rl-algorithm rloo"), ("rlvr", "")),
    **PREFERENCE))
