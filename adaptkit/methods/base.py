"""What every method definition is made of: the recipe fields all methods share, the recipe base class each
method's variant extends, and `MethodDef`, the one record every layer reads. Torch-free.

A method lives in one module of this package (supervised, preference, prompting, rag, tools): its recipe
variant (a pydantic model with its own blocks and cross-field checks), and a `MethodDef` registered in
`adaptkit.methods.registry` with its tasks, the estimator traits, the runner and data check (named, imported
lazily), the PEFT and trainer keyword dicts the runner and the exporter share, and the metric a bake-off ranks by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adaptkit.errors import InputError

EMBEDDED = "sentence-transformers/all-MiniLM-L6-v2"
AUTO = {"sequence_classification": ("AutoModelForSequenceClassification", "AutoTokenizer"),
        "image_classification": ("AutoModelForImageClassification", "AutoImageProcessor"),
        "speech_recognition": ("AutoModelForSpeechSeq2Seq", "AutoProcessor"), "image_text_to_text": ("AutoModelForImageTextToText", "AutoProcessor")}
CAUSAL = ("AutoModelForCausalLM", "AutoTokenizer")
MEDIA_TASKS = ("image_classification", "image_text_to_text", "speech_recognition", "text_to_image")  # recipes that read images or audio  # each task's model class and what reads its inputs (AUTO's default)
LOWER_IS_BETTER = ("wer", "cer", "perplexity", "denoising_loss")  # primary metrics where less is better (ranked by their negation)
TASKS = ("sequence_classification", "image_classification", "image_text_to_text", "speech_recognition", "text_to_image", "causal_lm",
         "question_answering", "agent")

# ------------------------------------------------------------------------------------------ templates in recipes

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, **values) -> str:
    """Put values into `{name}` placeholders. `{{` and `}}` are literal braces; any other brace (JSON in a prompt) stays."""
    def swap(match):
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return str(values[match.group(1)]) if match.group(1) in values else token
    return _PLACEHOLDER.sub(swap, template)


def placeholders(*names: str):
    """A field validator: a template may use only these placeholders."""
    def check(cls, value: str | None) -> str | None:
        if value is None:
            return value
        unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(value) if m.group(1) and m.group(1) not in names})
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}} (this template knows {', '.join('{' + n + '}' for n in names)}; "
                             f"write {{{{{unknown[0]}}}}} for literal braces)")
        return value
    return classmethod(check)


PATH_ROLES = ("file", "data", "model", "code", "output")


def input_path(description: str, role: str = "file", **kwargs):
    """A recipe field naming something the run reads. A relative value resolves against the recipe file's folder (a
    value given as a command-line override, against the working folder). Roles: file (always a path), data (a file,
    or else a hub dataset), model (a local folder, or else a hub id), code (`path/to/file.py:function`, or a module)."""
    if role not in PATH_ROLES:
        raise ValueError(f"input_path role {role!r} is not one of {', '.join(PATH_ROLES)}")
    return Field(json_schema_extra={"path": role}, description=description, **kwargs)


def path_role(model: type[BaseModel], name: str) -> str | None:
    extra = model.model_fields[name].json_schema_extra
    return extra.get("path") if isinstance(extra, dict) else None


def nested_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The pydantic model a field holds (directly, optionally, or as list items), if it is a block."""
    from typing import get_args

    annotation = model.model_fields[name].annotation
    stack = [annotation]
    while stack:
        candidate = stack.pop()
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        stack.extend(get_args(candidate))
    return None


def outputs_kept(recipe: "RecipeBase") -> list[str]:
    """Places a run writes besides output_dir (a RAG index): kept when the run in output_dir is replaced."""
    return [value for dotted, role, value in path_values(recipe) if role == "output" and dotted != "output_dir"]


def path_values(instance: BaseModel, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted field, role, value) for every path-like value set in a recipe."""
    found = []
    for name in type(instance).model_fields:
        value = getattr(instance, name)
        role = path_role(type(instance), name)
        if role and isinstance(value, str):
            found.append((prefix + name, role, value))
        elif isinstance(value, BaseModel):
            found.extend(path_values(value, f"{prefix}{name}."))
        elif isinstance(value, list):
            for number, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found.extend(path_values(item, f"{prefix}{name}.{number}."))
    return found


# ------------------------------------------------------------------------------------------ shared recipe blocks


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


FORMATS = ("auto", "prompt_response", "alpaca", "sharegpt", "messages", "pairs", "kto", "labeled", "text")


class DataSource(Strict):
    """One training source of a mix: where it is, what shape its rows have, and its part of the mix."""

    path: str = input_path("a .jsonl/.json/.csv/.tsv/.parquet file, or a hub dataset id", "data")
    format: Literal[FORMATS] = Field("auto", description=(  # type: ignore[valid-type]
        "how the rows are written: prompt_response, alpaca (instruction/input/output), sharegpt (conversations of from/value), "
        "messages (OpenAI chat: role/content), pairs (prompt/chosen/rejected), kto (prompt/completion/label), labeled "
        "(text/label), text (raw text); auto reads it from the columns"))
    weight: Optional[float] = Field(None, gt=0, description="this source's share of the mix (weights are normalised; "
                                                            "datasets.interleave_datasets draws from them, seeded)")
    rows: Optional[int] = Field(None, ge=1, description="take exactly this many rows (a smaller source is repeated; "
                                                        "instead of weight)")
    columns: dict[str, str] = Field(default_factory=dict, description="rename this source's columns first: {its name: the name "
                                                                      "its format reads}")
    config: Optional[str] = Field(None, description="hub dataset: its configuration (subset) name")
    split: str = Field("train", description="hub dataset: the split read")
    revision: Optional[str] = Field(None, description="hub dataset: a branch, tag or commit, for a run that reads the same rows again")
    streaming: bool = Field(False, description="read the hub dataset as a stream (nothing downloaded beyond the rows taken); "
                                               "needs rows, or data.max_rows")


class DataConfig(Strict):
    train: Optional[str] = input_path("training data (or the demonstration pool): a .jsonl/.csv/.parquet file, or a hub dataset name",
                                      "data", default=None)
    sources: Optional[list[DataSource]] = Field(None, min_length=1, description=(
        "instead of train: several training sources, each with its format and weight or rows, mixed into one training set "
        "(`--dry-run` shows the mix)"))
    mix_strategy: Literal["first_exhausted", "all_exhausted"] = Field(
        "first_exhausted", description="weighted sources: stop when the first source runs out, or when all have (repeating the "
                                       "small ones); datasets' stopping_strategy")
    eval: Optional[str] = input_path("held-out data (same formats); or use eval_fraction", "data", default=None)
    train_split: str = Field("train", description="split of a hub dataset used for training")
    eval_split: str = Field("test", description="split of a hub dataset used for evaluation")
    eval_fraction: Optional[float] = Field(None, gt=0, lt=0.5, description="hold out this share of train when there is no eval")
    text_column: str = Field("text", description="classification: the input text column; speech recognition: the transcript")
    image_column: str = Field("image", description="image classification: the image column (a path relative to the data file, an "
                                                   "absolute path, or a data URL)")
    language: Optional[str] = Field(None, description="speech recognition: the clips' language (Whisper's language token, e.g. "
                                                      "english); null: the tokenizer's own prefix (a multilingual Whisper then detects it)")
    audio_column: str = Field("audio", description="speech recognition: the audio column (a .wav path relative to the data file, an "
                                                   "absolute path, or a data URL; .flac/.mp3/.ogg with soundfile installed)")
    image_size: Optional[int] = Field(None, ge=8, le=4096, description="text to image: the training resolution in pixels (default: the "
                                                                       "model's, its UNet's sample size times the VAE's scale)")
    max_image_pixels: int = Field(25_000_000, ge=1, description="image classification: a larger image (width x height) is refused "
                                                                "before training (a decompression bomb, or a photo to shrink first)")
    label_column: str = Field("label", description="classification: the label column (strings or integers); feedback data (KTO): the rating")
    prompt_column: str = Field("prompt", description="instruction data: the prompt column")
    response_column: str = Field("response", description="instruction data: the response column")
    messages_column: Optional[str] = Field(None, description="instruction data: a column of chat messages (instead of prompt/response)")
    chosen_column: str = Field("chosen", description="preference data: the preferred response (text or messages)")
    rejected_column: str = Field("rejected", description="preference data: the dispreferred response (text or messages)")
    completion_column: str = Field("completion", description="feedback data (KTO): the response that was rated; its rating is in "
                                                             "label_column (true/false, 1/0, up/down, good/bad, yes/no)")
    max_rows: Optional[int] = Field(None, ge=1, description="use at most this many training rows (quick trials): a sample drawn "
                                                         "with training.seed, spread over the label column's values, in file order")

    @model_validator(mode="after")
    def _one_training_set(self):
        if self.sources is None:
            return self
        if self.train:
            raise ValueError("give `data.train` or `data.sources`, not both")
        weighted, counted = [s.weight is not None for s in self.sources], [s.rows is not None for s in self.sources]
        if any(weighted) and not all(weighted):
            raise ValueError("`data.sources`: give every source a weight, or none")
        if any(weighted) and any(counted):
            raise ValueError("`data.sources`: mix by weight or by rows, not both")
        if any(s.streaming and s.rows is None for s in self.sources) and not self.max_rows:
            raise ValueError("`data.sources`: a streamed source needs `rows`, or `data.max_rows` to bound the mix")
        return self

    @property
    def training_set(self) -> str | None:
        """What the training rows are read from, in words: data.train, or the sources."""
        return self.train or (" + ".join(s.path for s in self.sources) if self.sources else None)


OPTIMIZERS = ("adamw_torch", "adamw_8bit", "paged_adamw_8bit", "adafactor", "sgd")
TRAINER_OPTIM = {"adamw_torch": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit", "paged_adamw_8bit": "paged_adamw_8bit",
                 "adafactor": "adafactor", "sgd": "sgd"}  # the recipe's name -> TrainingArguments.optim


class TrainingConfig(Strict):
    epochs: float = Field(3.0, gt=0, le=100_000, description="passes over the training data (ignored when max_steps is set)")
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="peak learning rate")
    batch_size: int = Field(16, ge=1, description="micro-batch per device")
    gradient_accumulation: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_length: int = Field(128, ge=8, le=1_048_576, description="tokens per example; longer ones are truncated (and counted in "
                                                                 "--dry-run); at most 1,048,576")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="seed for data order and initialisation (0 to 2**32 - 1)")
    precision: Literal["auto", "fp32", "bf16-mixed", "fp16-mixed", "bf16"] = Field(
        "auto", description="auto: bf16-mixed on a GPU that supports it, fp32 on the CPU; bf16: pure bf16 weights and optimizer "
                            "states, no fp32 masters (half the memory of mixed precision for full weights; the CPU runs it too)")
    optimizer: Literal[OPTIMIZERS] = Field(  # type: ignore[valid-type]
        "adamw_torch", description="adamw_torch; adamw_8bit or paged_adamw_8bit (bitsandbytes, CUDA): states in 8 bits; "
                                   "adafactor: factored second moments; sgd: no optimizer state")
    chunked_loss: bool = Field(False, description="Liger's fused linear cross-entropy: the logits never materialise whole "
                                                  "(CUDA and liger-kernel; causal LMs)")
    packing: bool = Field(False, description="causal-LM SFT: pack examples into max_length blocks (no padding; TRL's packing)")
    batch_scope: Literal["global", "per_device"] = Field(
        "global", description="global: batch_size x gradient_accumulation is the batch of one optimizer step however many "
                              "processes run (run --num-processes divides it among them); per_device: every process takes "
                              "batch_size, so the step's batch grows with the processes")
    sharding: Literal["none", "ddp", "fsdp", "zero2", "zero3"] = Field(
        "none", description="with run --num-processes N: ddp copies the model to each GPU; fsdp / zero3 shard weights, gradients and "
                            "optimizer states; zero2 shards gradients and states (DeepSpeed). adaptkit writes the accelerate config")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward to save memory")
    max_steps: Optional[int] = Field(None, ge=1, description="stop after this many optimizer steps")
    eval_every: Optional[int] = Field(None, ge=1, description="evaluate every N steps (default: each epoch)")
    save_every: Optional[int] = Field(None, ge=1, description="save a checkpoint every N steps (default: each epoch)")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of steps spent warming up the learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    logging_steps: int = Field(5, ge=1, description="log the loss every N steps")
    generate_eval: int = Field(32, ge=0, description="causal LMs: after training, generate for the first N eval rows and score "
                               "the answers with the task's scorer (samples.jsonl); 0: only the eval loss")
    max_new_tokens: int = Field(64, ge=1, description="causal LMs: tokens generated per eval row after training")
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list, description="trackers that also get the logs (the Trainer's report_to); tensorboard and mlflow write "
        "into output_dir (runs/, mlflow.db), offline")


class BackendBlock(Strict):
    kind: Literal["local", "openai"] = Field("local", description="local: the recipe's model with Transformers; openai: any OpenAI-compatible endpoint")
    base_url: Optional[str] = Field(None, description="openai: the endpoint, e.g. http://localhost:8000/v1")
    model: Optional[str] = Field(None, description="openai: the served model name (default: the recipe's model)")
    api_key_env: Optional[str] = Field(None, description="openai: the environment variable holding the API key (the key is never written)")
    allow_key_to: Optional[str] = Field(None, description="openai: the host the key may go to when it is not the provider's own "
                                                          "(a gateway, a proxy); the same as run --send-key")
    timeout_s: float = Field(60.0, gt=0, description="seconds one whole request may take")
    max_retries: int = Field(4, ge=0, description="retries on 429, 5xx, timeouts and dropped connections, with exponential backoff")
    concurrency: int = Field(4, ge=1, description="requests in flight at once")
    cache_dir: Optional[str] = input_path("cache responses on disk, keyed by request (re-running costs nothing)", "output", default=None)
    max_new_tokens: int = Field(64, ge=1, description="tokens generated per answer")
    temperature: float = Field(0.0, ge=0, description="0 = greedy")


BUILT_IN_SCORERS = ("classification", "extraction", "generation", "code", "chat")  # adaptkit.methods.scorers


class ScoringBlock(Strict):
    scorer: Optional[str] = input_path(
        "how answers are scored, the same for every method on this task: classification, extraction, generation, code, chat, "
        "or module:function / path/to/file.py:function (predictions, references, **options) -> dict of metrics (needs "
        "--allow-code). Default: classification for sequence_classification, generation otherwise", "code", default=None)
    primary: Optional[str] = Field(None, description="the metric a bake-off ranks by (default: the scorer's own; a function's "
                                                     "first metric)")
    schema_file: Optional[str] = input_path("extraction: a JSON schema file the parsed answers are validated against "
                                            "(schema_valid)", "file", default=None)
    rubric: Optional[str] = Field(None, description="chat: score each answer alone against this rubric (1-10) instead of the "
                                                    "pairwise judgement against the base")
    timeout_s: float = Field(10.0, gt=0, le=600, description="code: seconds each answer's test may run before it is killed")

    @field_validator("scorer")
    @classmethod
    def _known(cls, value):
        if value is not None and value not in BUILT_IN_SCORERS and ":" not in value:
            raise ValueError(f"unknown scorer {value!r}: one of {', '.join(BUILT_IN_SCORERS)}, or module:function")
        return value


class RecipeBase(Strict):
    """What every recipe has; each method's variant adds its own blocks and checks. Exactly what `adaptkit run` does is written here."""

    method: str = Field(description="a catalogue method id")
    task: Literal[TASKS] = Field(description="what the model learns or is asked to do")  # type: ignore[valid-type]
    model: str = input_path("hub id or local path (sentence-transformers/all-MiniLM-L6-v2 resolves to the embedded copy offline)", "model")
    trust_remote_code: bool = Field(False, description="run code shipped with the model (only for models you trust)")
    allow_code: bool = Field(False, description="allow this recipe to import the Python code it names (tools.custom, prompts.scorer, scoring.scorer); "
                                                "the same as adaptkit run --allow-code")
    data: DataConfig = Field(description="your data: the training file (and an eval file, or eval_fraction to hold out a share), "
                                         "and the names of the columns the method reads")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="how long, how fast and in what batches it "
                                                                                 "trains (every field: docs/recipe-reference.md)")
    backend: BackendBlock = Field(default_factory=BackendBlock, description="training-free methods: where prompts go")
    scoring: ScoringBlock = Field(default_factory=ScoringBlock, description="how every method's answers on this task are scored")
    output_dir: str = input_path("where the model, metrics, model card, log and loss curve go (relative to the working folder)", "output")

    COMMON: ClassVar[tuple[str, ...]] = ("method", "task", "model", "trust_remote_code", "allow_code", "data", "training", "backend",
                                         "scoring", "output_dir")
    REQUIRED: ClassVar[tuple[str, ...]] = ()  # the method's blocks a recipe must give
    RENAMED: ClassVar[dict[str, str]] = {}  # old dotted name -> new: still read (recipes and overrides), with a note

    @field_validator("model", "output_dir")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _method_checks(self):
        definition = self.definition
        for block in self.REQUIRED:
            if getattr(self, block) is None:
                raise ValueError(f"`method: {self.method}` needs a `{block}` block")
        self.check()
        if self.task not in definition.tasks:
            raise ValueError(f"`method: {self.method}` needs `task: {'` or `task: '.join(definition.tasks)}`")
        if definition.needs_train and not self.data.training_set:
            raise ValueError(f"`data.train` (or `data.sources`) is required for `method: {self.method}`")
        if definition.needs_eval and not self.data.eval and not (definition.needs_train and self.data.training_set and self.data.eval_fraction):
            raise ValueError(f"`method: {self.method}` needs `data.eval`: {definition.needs_eval}")
        scorer = self.scoring.scorer
        if self.task in ("sequence_classification", "image_classification") and scorer in BUILT_IN_SCORERS and scorer != "classification":
            raise ValueError(f"`scoring.scorer: {scorer}` scores generated text; a classification recipe's answers are labels "
                             "(classification, or a module:function of your own)")
        t = self.training
        if t.packing and not (definition.objective == "sft" and self.task == "causal_lm"):
            raise ValueError("`training.packing` packs causal-LM SFT examples; this recipe trains something else: remove it")
        if t.chunked_loss and self.task != "causal_lm":
            raise ValueError("`training.chunked_loss` fuses a causal LM's output layer and loss; this recipe is not a causal LM")
        lora = getattr(self, "lora", None)
        if lora is not None and getattr(lora, "loraplus_lr_ratio", None) and t.optimizer != "adamw_torch":
            raise ValueError("`lora.loraplus_lr_ratio` builds its own AdamW: leave `training.optimizer` at adamw_torch")
        return self

    def check(self) -> None:
        """Cross-field checks of a method's own blocks: raise ValueError naming the fields."""

    @classmethod
    def blocks(cls) -> tuple[str, ...]:
        """The recipe blocks this method owns."""
        return tuple(name for name in cls.model_fields if name not in RecipeBase.COMMON)

    DEFINITION: ClassVar["MethodDef | None"] = None  # set by registry.register on the method's own variant

    @property
    def definition(self) -> "MethodDef":
        if type(self).DEFINITION is None:
            raise TypeError(f"{type(self).__name__} is not a registered method's recipe")
        return type(self).DEFINITION

    @property
    def adapter(self) -> str:
        """lora, ia3, prompt, prefix, or none (all weights, or no training)."""
        return "none"

    @property
    def contacts_backend(self) -> bool:
        """Whether a run sends requests to the backend block's endpoint (its key goes there): a training-free method."""
        return not self.definition.trains

    @property
    def quantization(self) -> str:
        """none, 8bit or 4bit: a quantized base is set on the recipe's LoRA block (QLoRA), when it has one."""
        lora = getattr(self, "lora", None)
        return lora.quantization if lora is not None else "none"


# ------------------------------------------------------------------------------------------ the definition record


class Code(str):
    """A name to write into generated code as it is (`MODEL`), not as a string literal."""

    def __repr__(self) -> str:
        return str(self)


def literal(value) -> str:
    """A Python literal for a value (every string through repr, never pasted), a dict one key per line."""
    if isinstance(value, dict):
        return "{\n    " + ",\n    ".join(f"{k!r}: {v!r}" for k, v in value.items()) + ",\n}"
    return repr(value)


@dataclass(frozen=True)
class MethodDef:
    """One method: the facts every layer reads about it. Build one per method and pass it to `registry.register`."""

    id: str  # the catalogue id (its row in data/methods.yaml)
    recipe: type[RecipeBase]  # the recipe variant, discriminated on `method`
    tasks: tuple[str, ...]  # recipe tasks it runs
    objective: str  # the estimator's objective: sft | preference | rl | serve
    adapters: tuple[str, ...]  # estimator adapters it can take, the default first (none: all weights)
    runner: str  # "module:function(recipe, data, options) -> RunResult", imported when it runs
    data: str  # "module:function(recipe) -> data": checks and reads the data before any weights load (torch-free)
    summary: str  # "module:function(recipe, data) -> dict": the data part of --dry-run
    metrics: tuple[str, ...]  # what a bake-off can rank it by (its primary metric is the first one present in eval)
    setup: Callable[[RecipeBase], dict] = lambda recipe: {}  # recipe -> estimator Setup fields of this method
    peft: Callable[[RecipeBase, str], tuple[str, dict] | None] = lambda recipe, model: None  # (PEFT config class, kwargs)
    trainer: Callable[[RecipeBase], dict] = lambda recipe: {}  # the trainer config's method-specific fields (TRL/Trainer)
    trl: Callable[[RecipeBase], tuple[str, dict, list]] | None = None  # export --format trl: (trl command, config fields, what is lost)
    export: Callable[[RecipeBase], tuple[str, dict]] | None = None  # export --format script: (template, its own placeholders as code)
    needs_train: bool = True  # data.train is required
    needs_eval: str = ""  # data.eval is required: what the file holds
    needs_corpus: str = ""  # it reads a folder of documents (the profile's corpus_dir): what the folder holds
    prompt_parts: tuple[str, ...] = ()  # estimate: what a served prompt carries besides the input (shots, chunks, tools)
    serve_tokens: int = 1024  # estimate: the context a served request fills by default
    stages: tuple[str, ...] = ()  # `run --stage` choices (RLHF: reward, policy)
    emit: Callable | None = None  # advise --emit-recipe: (profile, context) -> this method's recipe fields, or None where it cannot
    plan: Callable | None = None  # advise --emit-recipe: (recipe, notes, context, fit) -> the stages [(recipe, notes)] to run in order
    code: Callable[[RecipeBase], list] = lambda recipe: []  # `setting `ref`` strings of Python code the recipe imports
    to_lora: Callable[[RecipeBase], list] = lambda recipe: []  # overrides that let a full-weight recipe of it take a lora block
    base: str = ""  # a training-free method: what its runs' `base` is (what it scores without its own change)
    scored: Callable[[RecipeBase], str | None] = lambda recipe: "every eval row"  # what the recipe's scorer scores (None: nothing)
    aliases: tuple[tuple[str, str], ...] = ()  # (another name users type, the `estimate` options it means with this id)

    @property
    def trains(self) -> bool:
        return self.objective != "serve"

    def primary(self, metrics: dict) -> tuple[str, float | None]:
        """The metric a bake-off ranks this run by, and its value (higher is better: an error rate is negated)."""
        e = metrics.get("eval") or {}
        named = e.get("primary_metric")  # the task scorer's own, where the run scored its answers
        if named and isinstance(e.get(named), (int, float)) and not isinstance(e.get(named), bool):
            return (f"neg_{named}", -float(e[named])) if named in LOWER_IS_BETTER else (named, float(e[named]))
        for name in self.metrics:
            if name == "neg_eval_loss" and e.get("loss") is not None:
                return name, -float(e["loss"])
            if isinstance(e.get(name), (int, float)) and not isinstance(e.get(name), bool):
                return name, float(e[name])
        return "none", None


@dataclass
class RunOptions:
    """How the CLI asks a runner to run: where to write, and the callbacks a method may need."""

    out: Path  # where this run writes (the output folder, or the new run beside the one it replaces)
    resume: bool = False
    stage: str = "all"  # RLHF: all, reward or policy
    policy_out: Path | None = None  # RLHF --stage policy: where the new policy goes (default: out/policy)
    confirm: Callable[[str, dict], bool] = lambda name, arguments: False  # tool use: may this state-changing call run?
    progress: Callable[[int, int], None] | None = None  # long loops (RAG ingest): done, total
    start_job: bool = False  # a vendor fine-tuning recipe: upload the data and start the (paid) job
    show_training: bool = False  # the Trainer's progress bar and log lines on stderr (the CLI's run; a library call prints nothing)


@dataclass
class RunResult:
    """What a runner hands back; the CLI writes and renders it. Runners never print."""

    metrics: dict  # metrics.json: method, task, train, eval
    history: list[dict] = field(default_factory=list)  # the trainer's log (loss, eval, reward per step)
    artifacts: list[str] = field(default_factory=list)  # files the run wrote, relative to its folder
    stage: str = "all"  # RLHF: a run of one stage keeps its metrics with that stage
    folder: Path | None = None  # where the finished run is (set by adaptkit.run once it is in place)
    recipe: "RecipeBase | None" = None  # the recipe that ran (set by adaptkit.run)
    next: str | None = None  # a staged method's next command (RLHF after --stage reward)

    @property
    def eval(self) -> dict:
        """The evaluation figures (metrics["eval"])."""
        return self.metrics.get("eval") or {}


def processes() -> int:
    """How many data-parallel processes this run has (torchrun and accelerate launch set WORLD_SIZE)."""
    import os

    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def split_batch(batch_size: int, accumulation: int, scope: str, count: int) -> tuple[int, int]:
    """(per-device batch, accumulation) over `count` processes: the recipe's global batch kept (scope global) or each
    process taking the recipe's batch (per_device)."""
    if count <= 1 or scope == "per_device":
        return batch_size, accumulation
    total = batch_size * accumulation
    for steps in range(accumulation, 0, -1):  # keep the per-device batch as large as the recipe's allows
        if total % (count * steps) == 0 and total // (count * steps) <= batch_size:
            return total // (count * steps), steps
    raise InputError(f"the global batch {batch_size} x {accumulation} = {total} cannot be split evenly over {count} processes: "
                     f"make it a multiple of {count}, or set training.batch_scope=per_device")


def training_kwargs(recipe: RecipeBase, out: Path, has_eval: bool, **changes) -> dict:
    """TrainingArguments fields every trainer shares, from the recipe's `training` block (changes override them).
    Precision is left to the runner, which knows the device; the exporter writes the same dict as code. Over several
    processes the recipe's global batch is kept (training.batch_scope)."""
    t = recipe.training
    values = dict(epochs=t.epochs, learning_rate=t.learning_rate, batch_size=t.batch_size, max_steps=t.max_steps)
    values.update(changes)
    batch, accumulation = split_batch(values["batch_size"], t.gradient_accumulation, t.batch_scope, processes())
    common = dict(
        output_dir=str(out), num_train_epochs=values["epochs"], max_steps=values["max_steps"] or -1,
        per_device_train_batch_size=batch, per_device_eval_batch_size=max(values["batch_size"], 8),
        gradient_accumulation_steps=accumulation, learning_rate=values["learning_rate"],
        weight_decay=t.weight_decay, warmup_steps=t.warmup_ratio, seed=t.seed, data_seed=t.seed,
        logging_steps=t.logging_steps, logging_first_step=True, report_to=list(t.report_to) or "none",
        eval_strategy=("steps" if t.eval_every else "epoch") if has_eval else "no", eval_steps=t.eval_every,
        save_strategy="steps" if t.save_every else "epoch", save_steps=t.save_every, save_total_limit=2,
        dataloader_num_workers=0,
    )
    if t.gradient_checkpointing:
        common["gradient_checkpointing"] = True
    if t.optimizer != "adamw_torch":
        common["optim"] = TRAINER_OPTIM[t.optimizer]
    if t.chunked_loss:
        common["use_liger_kernel"] = True
    return common


def trainer_kwargs(recipe: RecipeBase, out: Path, has_eval: bool) -> dict:
    """The whole trainer config of a one-stage method: the shared training fields and the method's own. The runner adds
    the precision flags and builds the config; `adaptkit export` writes the same dict into the script."""
    return {**training_kwargs(recipe, out, has_eval), **recipe.definition.trainer(recipe)}
