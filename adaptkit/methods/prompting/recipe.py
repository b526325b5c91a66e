"""Methods that change only the prompt, measured on a labeled dev set: `prompt_engineering` (prompt variants) and
`in_context_learning` (k demonstrations, picked at random, label-balanced or by similarity)."""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field, field_validator

from adaptkit.methods.base import EMBEDDED, MethodDef, RecipeBase, Strict, input_path, placeholders
from adaptkit.methods.registry import register

SCORERS = ("exact", "contains")  # built in; anything else is a module:function the user allows


class PromptVariant(Strict):
    name: str = Field(description="a short name for the results table")
    template: str = Field(description="the user message; {text} is the input, {labels} the label set (classification)")

    _check_template = field_validator("template")(placeholders("text", "labels"))


class PromptsBlock(Strict):
    system: Optional[str] = Field(None, description="the system prompt shared by every variant")
    variants: list[PromptVariant] = Field(min_length=1, description="prompt templates to compare on the dev set")
    scorer: str = input_path("exact, contains, or module:function / path/to/file.py:function (prediction, expected) -> float in "
                             "[0, 1] (needs --allow-code)", "code", default="exact")


class ICLBlock(Strict):
    shots: list[int] = Field([0, 1, 2, 4, 8], min_length=1, description="numbers of demonstrations to compare")
    selection: Literal["random", "balanced", "similar"] = Field("similar", description="how demonstrations are picked from data.train")
    embedding_model: str = input_path("for selection: similar (the embedded MiniLM offline)", "model", default=EMBEDDED)
    instruction: Optional[str] = Field(None, description="the opening line; {labels} is the label set (default: 'Sort each item "
                                                         "into one of: {labels}.'; a causal LM: 'Answer each request the way the "
                                                         "examples do.')")
    example_template: Optional[str] = Field(None, description="one demonstration: {text} the input (prompt), {label} its label "
                                                              "(response); default 'Input: {text}\\nLabel: {label}', a causal LM "
                                                              "'Request: {text}\\nAnswer: {label}'")
    query_template: Optional[str] = Field(None, description="the item to answer; default 'Input: {text}\\nLabel:', a causal LM "
                                                            "'Request: {text}\\nAnswer:'")
    max_prompt_tokens: Optional[int] = Field(None, ge=16, description="token budget; k shrinks to fit (default: the model's context)")

    _check_instruction = field_validator("instruction")(placeholders("labels"))
    _check_example = field_validator("example_template")(placeholders("text", "label"))
    _check_query = field_validator("query_template")(placeholders("text"))

    DEFAULTS: ClassVar[dict] = {
        "sequence_classification": ("Sort each item into one of: {labels}.", "Input: {text}\nLabel: {label}", "Input: {text}\nLabel:"),
        "causal_lm": ("Answer each request the way the examples do.", "Request: {text}\nAnswer: {label}", "Request: {text}\nAnswer:"),
    }

    def templates(self, task: str) -> tuple[str, str, str]:
        """(instruction, example, query): the recipe's, else the task's defaults."""
        defaults = self.DEFAULTS[task]
        return (self.instruction or defaults[0], self.example_template or defaults[1], self.query_template or defaults[2])


class PromptEngineeringRecipe(RecipeBase):
    method: Literal["prompt_engineering"] = Field(description="prompt variants scored on a dev set")
    prompts: Optional[PromptsBlock] = Field(None, description="prompt variants")

    REQUIRED = ("prompts",)


class IclRecipe(RecipeBase):
    method: Literal["in_context_learning"] = Field(description="k labeled demonstrations in the prompt")
    icl: Optional[ICLBlock] = Field(None, description="few-shot settings")

    REQUIRED = ("icl",)

    def check(self) -> None:
        if self.task == "causal_lm" and self.icl is not None:
            if self.data.messages_column:
                raise ValueError("in_context_learning on a causal LM reads prompt/response columns (demonstrations are written "
                                 "into one prompt): remove data.messages_column")
            if self.icl.selection == "balanced":
                raise ValueError("`icl.selection: balanced` balances labels; a causal LM's data has none: use similar or random")
            if self.icl.instruction and "{labels}" in self.icl.instruction:
                raise ValueError("`icl.instruction` names {labels}; a causal LM's data has no label set: remove it")


def _scorer_code(recipe: PromptEngineeringRecipe) -> list[str]:
    return [] if recipe.prompts.scorer in SCORERS else [f"prompts.scorer `{recipe.prompts.scorer}`"]


def _emit_prompts(profile, context) -> dict:
    """Prompt variants on the user's dev set (or the demo tickets), scored exactly for classes, by containment otherwise."""
    classification = profile.task == "classification"
    variant = ({"name": "with_labels", "template": "Choose one of: {labels}.\n\n{text}\n\nAnswer with the label only."} if classification
               else {"name": "concise", "template": "{text}\n\nAnswer concisely."})
    return {"task": "sequence_classification" if classification else "causal_lm",
            "data": {"eval": context.dev_data("classification" if classification else "instructions")},
            "prompts": {"system": "You are a careful assistant. Follow the instructions exactly.",
                        "variants": [{"name": "plain", "template": "{text}"}, variant], "scorer": "exact" if classification else "contains"}}


def _emit_icl(profile, context) -> dict:
    """k-shot prompts on the user's data: label likelihoods for classification, generated answers scored by the task's
    scorer otherwise."""
    classification = profile.task == "classification"
    data = context.training_data("classification" if classification else "instructions", trains=False)["data"]  # a causal LM answers
    data = {key: data[key] for key in ("train", "eval", "eval_fraction")}  # a held-out share of one file: never scored on its pool
    if classification:
        return {"task": "sequence_classification", "data": data, "icl": {"shots": [0, 2, 4, 8], "selection": "similar"}}
    return {"task": "causal_lm", "data": data, "icl": {"shots": [0, 1, 2, 4], "selection": "similar"}, "backend": {"max_new_tokens": 128}}


PROMPTING = dict(objective="serve", adapters=("none",), data="adaptkit.methods.prompting.data:prompt_rows",
                 summary="adaptkit.methods.prompting.dryrun:prompting_summary")
register(MethodDef(id="prompt_engineering", recipe=PromptEngineeringRecipe, tasks=("sequence_classification", "causal_lm"),
                   runner="adaptkit.methods.prompting.runner:run_prompt_engineering", metrics=("accuracy", "exact", "contains"),
                   base="the bare input (no system prompt, no instructions)",
                   needs_train=False, serve_tokens=2048, code=_scorer_code, emit=_emit_prompts,
                   aliases=(("prompting", ""), ("prompts", "")), **PROMPTING))
register(MethodDef(id="in_context_learning", recipe=IclRecipe, tasks=("sequence_classification", "causal_lm"),
                   runner="adaptkit.methods.prompting.runner:run_icl", metrics=("accuracy",),
                   base="k = 0: the instruction and the input, no demonstrations",
                   needs_eval="the labeled dev set the k-shot prompts are scored on (data.train is the demonstration pool)",
                   prompt_parts=("shots",), serve_tokens=4096, emit=_emit_icl,
                   aliases=(("icl", ""), ("few_shot", "")), **PROMPTING))
