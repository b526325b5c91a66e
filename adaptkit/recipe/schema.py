"""The recipe schema: one pydantic model, strict (unknown keys fail), with a description on every field."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adaptkit.advisor.catalogue import METHOD_IDS

RUNNABLE = ("full_finetuning", "instruction_tuning", "lora_adapters", "prefix_prompt_tuning")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Strict):
    train: str = Field(description="training data: a .jsonl/.csv/.parquet file, or a hub dataset name")
    eval: Optional[str] = Field(None, description="held-out data (same formats); or use eval_fraction")
    train_split: str = Field("train", description="split of a hub dataset used for training")
    eval_split: str = Field("test", description="split of a hub dataset used for evaluation")
    eval_fraction: Optional[float] = Field(None, gt=0, lt=0.5, description="hold out this share of train when there is no eval")
    text_column: str = Field("text", description="classification: the input text column")
    label_column: str = Field("label", description="classification: the label column (strings or integers)")
    prompt_column: str = Field("prompt", description="instruction data: the prompt column")
    response_column: str = Field("response", description="instruction data: the response column")
    messages_column: Optional[str] = Field(None, description="instruction data: a column of chat messages (instead of prompt/response)")
    max_rows: Optional[int] = Field(None, ge=1, description="use at most this many training rows (quick trials)")


class TrainingConfig(Strict):
    epochs: float = Field(3.0, gt=0, description="passes over the training data (ignored when max_steps is set)")
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="peak learning rate")
    batch_size: int = Field(16, ge=1, description="micro-batch per device")
    gradient_accumulation: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_length: int = Field(128, ge=8, description="tokens per example; longer ones are truncated (and counted in --dry-run)")
    seed: int = Field(42, description="seed for data order and initialisation")
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


class Recipe(Strict):
    """A runnable recipe. Exactly what `adaptkit run` does is written here."""

    method: Literal[METHOD_IDS] = Field(description="a catalogue method id")  # type: ignore[valid-type]
    task: Literal["sequence_classification", "causal_lm"] = Field(description="what the model learns to do")
    model: str = Field(description="hub id or local path (sentence-transformers/all-MiniLM-L6-v2 resolves to the embedded copy offline)")
    trust_remote_code: bool = Field(False, description="run code shipped with the model (only for models you trust)")
    data: DataConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    lora: Optional[LoraConfigBlock] = Field(None, description="LoRA / QLoRA settings (method lora_adapters)")
    ia3: Optional[IA3ConfigBlock] = Field(None, description="IA3 settings (method lora_adapters, instead of lora)")
    prefix_prompt_tuning: Optional[PrefixConfigBlock] = Field(None, description="soft prompt settings (method prefix_prompt_tuning)")
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
        blocks = {"lora": self.lora, "ia3": self.ia3, "prefix_prompt_tuning": self.prefix_prompt_tuning}
        given = [name for name, block in blocks.items() if block is not None]
        if self.method == "lora_adapters" and len([b for b in given if b in ("lora", "ia3")]) != 1:
            raise ValueError("`method: lora_adapters` needs exactly one of the blocks `lora` or `ia3`")
        if self.method == "prefix_prompt_tuning" and "prefix_prompt_tuning" not in given:
            raise ValueError("`method: prefix_prompt_tuning` needs a `prefix_prompt_tuning` block")
        allowed = {"lora_adapters": {"lora", "ia3"}, "prefix_prompt_tuning": {"prefix_prompt_tuning"}}.get(self.method, set())
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
