"""The recipe schema: one pydantic model, strict (unknown keys fail), with a description on every field."""

from __future__ import annotations

import re
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adaptkit.advisor.catalogue import METHOD_IDS

RUNNABLE = ("full_finetuning", "instruction_tuning", "lora_adapters", "prefix_prompt_tuning", "dpo", "rlhf", "rag",
            "prompt_engineering", "in_context_learning", "tool_use")
EMBEDDED = "sentence-transformers/all-MiniLM-L6-v2"
SCORERS = ("exact", "contains")  # built in; anything else is a module:function the user allows
DPO_LOSSES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down")


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, **values) -> str:
    """Put values into `{name}` placeholders. `{{` and `}}` are literal braces; any other brace (JSON in a prompt) stays."""
    def swap(match):
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return str(values[match.group(1)]) if match.group(1) in values else token
    return _PLACEHOLDER.sub(swap, template)


def _template(*names: str):
    """A validator: a template may use only these placeholders."""
    def check(cls, value: str) -> str:
        unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(value) if m.group(1) and m.group(1) not in names})
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}} (this template knows {', '.join('{' + n + '}' for n in names)}; "
                             f"write {{{{{unknown[0]}}}}} for literal braces)")
        return value
    return classmethod(check)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DataConfig(Strict):
    train: Optional[str] = Field(None, description="training data (or the demonstration pool): a .jsonl/.csv/.parquet file, or a hub dataset name")
    eval: Optional[str] = Field(None, description="held-out data (same formats); or use eval_fraction")
    train_split: str = Field("train", description="split of a hub dataset used for training")
    eval_split: str = Field("test", description="split of a hub dataset used for evaluation")
    eval_fraction: Optional[float] = Field(None, gt=0, lt=0.5, description="hold out this share of train when there is no eval")
    text_column: str = Field("text", description="classification: the input text column")
    label_column: str = Field("label", description="classification: the label column (strings or integers)")
    prompt_column: str = Field("prompt", description="instruction data: the prompt column")
    response_column: str = Field("response", description="instruction data: the response column")
    messages_column: Optional[str] = Field(None, description="instruction data: a column of chat messages (instead of prompt/response)")
    chosen_column: str = Field("chosen", description="preference data: the preferred response (text or messages)")
    rejected_column: str = Field("rejected", description="preference data: the dispreferred response (text or messages)")
    max_rows: Optional[int] = Field(None, ge=1, description="use at most this many training rows (quick trials)")


class TrainingConfig(Strict):
    epochs: float = Field(3.0, gt=0, le=100_000, description="passes over the training data (ignored when max_steps is set)")
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="peak learning rate")
    batch_size: int = Field(16, ge=1, description="micro-batch per device")
    gradient_accumulation: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_length: int = Field(128, ge=8, description="tokens per example; longer ones are truncated (and counted in --dry-run)")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="seed for data order and initialisation (0 to 2**32 - 1)")
    precision: Literal["auto", "fp32", "bf16-mixed", "fp16-mixed"] = Field(
        "auto", description="auto: bf16-mixed on a GPU that supports it, fp32 on the CPU")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward to save memory")
    max_steps: Optional[int] = Field(None, ge=1, description="stop after this many optimizer steps")
    eval_every: Optional[int] = Field(None, ge=1, description="evaluate every N steps (default: each epoch)")
    save_every: Optional[int] = Field(None, ge=1, description="save a checkpoint every N steps (default: each epoch)")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of steps spent warming up the learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    logging_steps: int = Field(5, ge=1, description="log the loss every N steps")


class LoraConfigBlock(Strict):
    r: int = Field(8, ge=1, description="rank of the update matrices")
    alpha: int = Field(16, ge=1, description="scaling (alpha / r multiplies the update)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: Union[Literal["all-linear"], list[str], None] = Field(
        None, description="modules to adapt: a list, `all-linear`, or null for PEFT's default for the architecture")
    quantization: Literal["none", "8bit", "4bit"] = Field("none", description="load the base in 8 or 4 bits (QLoRA; needs CUDA and bitsandbytes)")


class PrefixConfigBlock(Strict):
    kind: Literal["prompt", "prefix"] = Field("prompt", description="prompt: soft input tokens; prefix: key/value prefixes in every layer")
    num_virtual_tokens: int = Field(20, ge=1, description="number of soft tokens")
    init_text: Optional[str] = Field(None, description="prompt tuning: initialise the soft tokens from this text")


class IA3ConfigBlock(Strict):
    target_modules: Optional[list[str]] = Field(None, description="modules to rescale; null for PEFT's default")
    feedforward_modules: Optional[list[str]] = Field(None, description="which of them are feed-forward; null for PEFT's default")


class DPOBlock(Strict):
    beta: float = Field(0.1, gt=0, description="strength of the pull toward the reference model (higher: stay closer)")
    loss_type: Literal[DPO_LOSSES] = Field("sigmoid", description="the DPO loss variant (TRL's loss_type)")  # type: ignore[valid-type]
    reference: Literal["adapters_off", "copy"] = Field(
        "adapters_off", description="adapters_off: the base with LoRA disabled (no second copy); copy: full-weight DPO with a frozen copy")
    starting_adapter: Optional[str] = Field(None, description="a LoRA adapter from an SFT run to start from (folder)")


class RewardStage(Strict):
    model: Optional[str] = Field(None, description="reward model base (default: the recipe's model)")
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


class RLHFBlock(Strict):
    reward: RewardStage = Field(default_factory=RewardStage)
    policy: PolicyStage = Field(default_factory=PolicyStage)


class BackendBlock(Strict):
    kind: Literal["local", "openai"] = Field("local", description="local: the recipe's model with Transformers; openai: any OpenAI-compatible endpoint")
    base_url: Optional[str] = Field(None, description="openai: the endpoint, e.g. http://localhost:8000/v1")
    model: Optional[str] = Field(None, description="openai: the served model name (default: the recipe's model)")
    api_key_env: Optional[str] = Field(None, description="openai: the environment variable holding the API key (the key is never written)")
    timeout_s: float = Field(60.0, gt=0, description="seconds to wait for one response")
    max_retries: int = Field(4, ge=0, description="retries on 429, 5xx and timeouts, with exponential backoff")
    concurrency: int = Field(4, ge=1, description="requests in flight at once")
    cache_dir: Optional[str] = Field(None, description="cache responses on disk, keyed by request (re-running costs nothing)")
    max_new_tokens: int = Field(64, ge=1, description="tokens generated per answer")
    temperature: float = Field(0.0, ge=0, description="0 = greedy")


class PromptVariant(Strict):
    name: str = Field(description="a short name for the results table")
    template: str = Field(description="the user message; {text} is the input, {labels} the label set (classification)")

    _check_template = field_validator("template")(_template("text", "labels"))


class PromptsBlock(Strict):
    system: Optional[str] = Field(None, description="the system prompt shared by every variant")
    variants: list[PromptVariant] = Field(min_length=1, description="prompt templates to compare on the dev set")
    scorer: str = Field("exact", description="exact, contains, or module:function / file.py:function (prediction, expected) -> float in [0, 1] (needs --allow-code)")


class ICLBlock(Strict):
    shots: list[int] = Field([0, 1, 2, 4, 8], min_length=1, description="numbers of demonstrations to compare")
    selection: Literal["random", "balanced", "similar"] = Field("similar", description="how demonstrations are picked from data.train")
    embedding_model: str = Field(EMBEDDED, description="for selection: similar (the embedded MiniLM offline)")
    instruction: str = Field("Sort each item into one of: {labels}.", description="the opening line; {labels} is the label set")
    example_template: str = Field("Input: {text}\nLabel: {label}", description="one demonstration")
    query_template: str = Field("Input: {text}\nLabel:", description="the item to label")
    max_prompt_tokens: Optional[int] = Field(None, ge=16, description="token budget; k shrinks to fit (default: the model's context)")

    _check_instruction = field_validator("instruction")(_template("labels"))
    _check_example = field_validator("example_template")(_template("text", "label"))
    _check_query = field_validator("query_template")(_template("text"))


class CustomTool(Strict):
    function: str = Field(description="module:function or path/to/file.py:function (needs --allow-code); its type hints and docstring become the tool's JSON schema")
    changes_state: bool = Field(True, description="the tool changes something (a refund, a ticket): confirmed or refused, never run silently; "
                                                  "set false only for tools that just read")


class ToolsBlock(Strict):
    builtins: list[Literal["calculator", "table_lookup"]] = Field(["calculator"], description="built-in tools")
    table: Optional[str] = Field(None, description="table_lookup: a CSV file")
    table_key: str = Field("id", description="table_lookup: the key column")
    custom: list[CustomTool] = Field(default_factory=list, description="your own tools")
    max_steps: int = Field(5, ge=1, description="model turns per task before giving up")
    confirm_changes: bool = Field(False, description="ask in the terminal before a state-changing tool runs (otherwise refuse it)")
    system: str = Field("Use the tools to answer. Call a tool whenever you need a number or a fact; then answer briefly.",
                        description="the system prompt")
    question_column: str = Field("question", description="tasks file: the task")
    answer_column: str = Field("answer", description="tasks file: the expected answer")


class RAGBlock(Strict):
    corpus: str = Field(description="a folder of .txt and .md files (.pdf too when pypdf is installed)")
    index_dir: str = Field(description="where the on-disk index lives; unchanged files are not re-embedded")
    chunk_size: int = Field(120, ge=10, description="words per chunk")
    chunk_overlap: int = Field(30, ge=0, description="words shared by neighbouring chunks")
    top_k: int = Field(3, ge=1, description="chunks retrieved per question")
    max_corpus_mb: float = Field(200.0, gt=0, description="refuse a corpus larger than this (MB of files); ingest resumes if interrupted")
    embedding_model: str = Field(EMBEDDED, description="sentence-transformers model (the embedded MiniLM offline)")
    generate: bool = Field(False, description="also answer each question with the backend, citing the chunks")
    question_column: str = Field("question", description="questions file: the question")
    source_column: str = Field("source", description="questions file: the file that holds the answer")
    answer_column: Optional[str] = Field("answer", description="questions file: the expected answer (for answer metrics)")
    prompt: str = Field(
        "Answer the question using only the numbered sources below, and cite them like [1].\n\n{sources}\n\nQuestion: {question}",
        description="the generation prompt; {sources} and {question} are filled in")

    _check_prompt = field_validator("prompt")(_template("sources", "question"))


class Recipe(Strict):
    """A runnable recipe. Exactly what `adaptkit run` does is written here."""

    method: Literal[METHOD_IDS] = Field(description="a catalogue method id")  # type: ignore[valid-type]
    task: Literal["sequence_classification", "causal_lm", "question_answering", "agent"] = Field(description="what the model learns or is asked to do")
    model: str = Field(description="hub id or local path (sentence-transformers/all-MiniLM-L6-v2 resolves to the embedded copy offline)")
    trust_remote_code: bool = Field(False, description="run code shipped with the model (only for models you trust)")
    allow_code: bool = Field(False, description="allow this recipe to import the Python code it names (tools.custom, prompts.scorer); "
                                                "the same as adaptkit run --allow-code")
    data: DataConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    lora: Optional[LoraConfigBlock] = Field(None, description="LoRA / QLoRA settings (method lora_adapters)")
    ia3: Optional[IA3ConfigBlock] = Field(None, description="IA3 settings (method lora_adapters, instead of lora)")
    prefix_prompt_tuning: Optional[PrefixConfigBlock] = Field(None, description="soft prompt settings (method prefix_prompt_tuning)")
    dpo: Optional[DPOBlock] = Field(None, description="DPO settings (method dpo)")
    rlhf: Optional[RLHFBlock] = Field(None, description="RLHF stages: reward model, then policy optimisation (method rlhf)")
    rag: Optional[RAGBlock] = Field(None, description="retrieval settings (method rag)")
    prompts: Optional[PromptsBlock] = Field(None, description="prompt variants (method prompt_engineering)")
    icl: Optional[ICLBlock] = Field(None, description="few-shot settings (method in_context_learning)")
    tools: Optional[ToolsBlock] = Field(None, description="tools and the calling loop (method tool_use)")
    backend: BackendBlock = Field(default_factory=BackendBlock, description="training-free methods: where prompts go")
    output_dir: str = Field(description="where the model, metrics, model card, log and loss curve go")

    @field_validator("model", "output_dir")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _method_blocks(self):
        if self.method not in RUNNABLE:
            raise ValueError(f"`method: {self.method}` has no runner yet; adaptkit run supports {', '.join(RUNNABLE)}")
        blocks = {"lora": self.lora, "ia3": self.ia3, "prefix_prompt_tuning": self.prefix_prompt_tuning, "dpo": self.dpo,
                  "rlhf": self.rlhf, "rag": self.rag, "prompts": self.prompts, "icl": self.icl, "tools": self.tools}
        given = [name for name, block in blocks.items() if block is not None]
        if self.method == "lora_adapters" and len([b for b in given if b in ("lora", "ia3")]) != 1:
            raise ValueError("`method: lora_adapters` needs exactly one of the blocks `lora` or `ia3`")
        for method, block in (("prefix_prompt_tuning", "prefix_prompt_tuning"), ("dpo", "dpo"), ("rlhf", "rlhf"), ("rag", "rag"),
                              ("prompt_engineering", "prompts"), ("in_context_learning", "icl"), ("tool_use", "tools")):
            if self.method == method and block not in given:
                raise ValueError(f"`method: {method}` needs a `{block}` block")
        if self.method == "in_context_learning" and (self.task != "sequence_classification" or not self.data.eval):
            raise ValueError("`method: in_context_learning` runs `task: sequence_classification` with `data.train` (the pool) and `data.eval`")
        if self.method == "tool_use" and (self.task != "agent" or not self.data.eval):
            raise ValueError("`method: tool_use` needs `task: agent` and `data.eval` (the tasks file: question, answer)")
        if self.method not in ("rag", "prompt_engineering", "tool_use") and not self.data.train:
            raise ValueError(f"`data.train` is required for `method: {self.method}`")
        if self.method == "rag" and not self.data.eval:
            raise ValueError("`method: rag` needs `data.eval`: the questions file (question, source, answer)")
        if self.method == "rag" and self.task != "question_answering":
            raise ValueError("`method: rag` needs `task: question_answering`")
        if self.method in ("dpo", "rlhf") and self.task != "causal_lm":
            raise ValueError(f"`method: {self.method}` trains a causal LM policy: set `task: causal_lm`")
        if self.method == "dpo" and self.dpo.reference == "adapters_off" and self.lora is None:
            raise ValueError("`dpo.reference: adapters_off` needs a `lora` block (or set `dpo.reference: copy` for full-weight DPO)")
        if self.method == "dpo" and self.dpo.reference == "copy" and self.lora is not None:
            raise ValueError("`dpo.reference: copy` is full-weight DPO: remove the `lora` block, or use `dpo.reference: adapters_off`")
        if self.method == "rlhf" and self.rlhf.policy.batch_size % self.rlhf.policy.num_generations:
            raise ValueError("`rlhf.policy.batch_size` must be a multiple of `rlhf.policy.num_generations`")
        allowed = {"lora_adapters": {"lora", "ia3"}, "prefix_prompt_tuning": {"prefix_prompt_tuning"},
                   "dpo": {"dpo", "lora"}, "rlhf": {"rlhf", "lora"}, "rag": {"rag"}, "prompt_engineering": {"prompts"},
                   "in_context_learning": {"icl"}, "tool_use": {"tools"}}.get(self.method, set())
        extra = [name for name in given if name not in allowed]
        if extra:
            raise ValueError(f"`method: {self.method}` does not use the block(s) {', '.join(extra)}: remove them")
        if self.method == "instruction_tuning" and self.task != "causal_lm":
            raise ValueError("`method: instruction_tuning` needs `task: causal_lm`")
        return self

    @property
    def adapter(self) -> str:
        """lora, ia3, prompt, prefix, or none (full weights)."""
        if self.lora:
            return "lora"
        if self.ia3:
            return "ia3"
        if self.prefix_prompt_tuning:
            return self.prefix_prompt_tuning.kind
        return "none"
