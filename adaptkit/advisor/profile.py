"""The profile a recommendation is made from: answers, validated, with hardware filled in."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adaptkit.errors import InputError, brief
from adaptkit.units import parse_count, parse_gigabytes, parse_number, parse_params_b

Task = Literal["classification", "extraction", "generation", "chat", "qa", "summarization", "code", "agent"]
Goal = Literal["knowledge", "behavior", "instruction_following", "alignment", "domain_adaptation", "actions"]
WeightAccess = Literal["open", "closed_api", "closed_api_ft"]
Volume = Literal["low", "medium", "high"]
Modality = Literal["text", "image_text_to_text", "speech_to_text", "text_to_image"]

REQUIRED = ("task", "goal", "weight_access")
MAX_ANSWERS_BYTES = 1 << 20
DEFAULT_BUDGET_USD = 1000.0


class Profile(BaseModel):
    """Everything the advisor weighs. Field descriptions double as the wizard's help lines."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    task: Task = Field(description="what the model must do")
    goal: Goal = Field(description="what adapting it should change")
    modality: Modality = Field("text", description="what goes in and comes out: text; image_text_to_text (images and text in, text "
                               "out: a vision-language model, or an image classifier); speech_to_text (audio in, text out: "
                               "Whisper-style); text_to_image (a prompt in, an image out: Stable Diffusion/FLUX-style) "
                               "(default text)")
    weight_access: WeightAccess = Field(description="open weights, a closed API, or a closed API your org can tune")
    model: Optional[str] = Field(None, description="model name or path (optional)")
    model_params_b: Optional[float] = Field(None, gt=0, le=100000, description="model size in billions of parameters; null for closed models")
    model_active_params_b: Optional[float] = Field(None, gt=0, le=100000, description="mixture of experts: billions of parameters "
                                                   "active per token (memory follows the total, compute the active); null for dense models")
    context_window_tokens: Optional[int] = Field(None, ge=1, description="the model's context window in tokens (default: from its config, "
                                                 "or assumed)")
    gpu_vram_gb: float = Field(0.0, ge=0, le=4096, description="memory per GPU in GB, 0 = no GPU (default: detected)")
    num_gpus: int = Field(0, ge=0, le=100000, description="number of GPUs (default: detected)")
    gpus_per_node: int = Field(0, ge=0, le=1024, description="GPUs on each machine when num_gpus spans several machines "
                               "(16 GPUs of 8 per node is two nodes; 0 = all on one machine, the default)")
    gpu_kind: Literal["cuda", "rocm", "mps"] = Field(
        "cuda", description="the GPUs: cuda (NVIDIA), rocm (AMD), mps (Apple silicon: gpu_vram_gb is the GPU's share of unified "
        "memory; no bitsandbytes 4-bit or 8-bit) (default: detected)")
    labeled_examples: int = Field(0, ge=0, description="input->output demonstrations you have (default 0)")
    preference_pairs: int = Field(0, ge=0, description="chosen/rejected pairs you have (default 0)")
    feedback_labels: int = Field(0, ge=0, description="single replies rated thumbs-up or thumbs-down, unpaired (KTO learns from them; default 0)")
    knowledge_changes_often: bool = Field(False, description="the facts change weekly or faster (default no)")
    needs_citations: bool = Field(False, description="answers must point to their sources (default no)")
    needs_actions_or_live_data: bool = Field(False, description="live data, side effects or exact computation (default no)")
    inference_volume: Volume = Field("low", description="low <1k requests/day, medium 1k-100k, high >100k (default low)")
    budget_usd: float = Field(DEFAULT_BUDGET_USD, ge=0, description="one-time adaptation budget in USD (default 1000)")
    privacy_on_prem: bool = Field(False, description="data may not leave your premises (default no)")
    tasks_to_serve: int = Field(1, ge=1, le=10_000_000, description="separately served tasks or tenants on one base model, not the task "
                                "families inside one instruction dataset (default 1)")
    # Optional inputs from rubric section 5.
    is_base_model: Optional[bool] = Field(None, description="a base (not instruction-tuned) model; unknown = treated as instruct")
    corpus_tokens: Optional[int] = Field(None, ge=0, description="size of the document collection in tokens (for RAG vs long prompt)")
    unlabeled_corpus_tokens: Optional[int] = Field(None, ge=0, description="unlabeled domain text for continued pre-training, in tokens")
    verifiable_reward: bool = Field(False, description="answers can be checked automatically (unit tests, exact answers); "
                                                       "with labeled_examples as prompts with reference answers, RL needs no pairs")
    online_labeling: bool = Field(False, description="you can label fresh model outputs as training goes")
    vendor_offers_preference_tuning: bool = Field(False, description="your API vendor offers preference (DPO) tuning")
    latency_slo_ms: Optional[float] = Field(None, gt=0, description="latency target per request in ms")
    needs_exact_numbers: bool = Field(False, description="answers need exact arithmetic or aggregation")
    mixed_task_batching: bool = Field(False, description="requests for different tasks share one batch")
    frozen_backbone_required: bool = Field(False, description="the base weights must stay untouched")
    # Where the data is: used when advise writes a recipe (--emit-recipe).
    train_data: Optional[str] = Field(None, description="training data file (.jsonl/.csv/.parquet) for the emitted recipe")
    eval_data: Optional[str] = Field(None, description="held-out data file for the emitted recipe")
    data_p95_tokens: Optional[int] = Field(None, ge=1, description="95th-percentile tokens per example (advise --data): the emitted "
                                           "recipe's max_length")
    text_column: Optional[str] = Field(None, description="your data's input text column (classification; default: detected, else text)")
    image_column: Optional[str] = Field(None, description="your data's image column (image classification; default: detected, else image)")
    audio_column: Optional[str] = Field(None, description="your data's audio column (speech recognition; default: detected, else audio)")
    label_column: Optional[str] = Field(None, description="your data's label column (classification; feedback ratings) (default: "
                                        "detected, else label)")
    prompt_column: Optional[str] = Field(None, description="your data's prompt column (default: detected, else prompt)")
    response_column: Optional[str] = Field(None, description="your data's response column (default: detected, else response)")
    messages_column: Optional[str] = Field(None, description="your data's column of chat messages, instead of prompt/response")
    chosen_column: Optional[str] = Field(None, description="preference pairs: the preferred response column (default: chosen)")
    rejected_column: Optional[str] = Field(None, description="preference pairs: the dispreferred response column (default: rejected)")
    completion_column: Optional[str] = Field(None, description="rated replies (KTO): the reply column (default: completion)")
    corpus_dir: Optional[str] = Field(None, description="RAG: the folder of documents for the emitted recipe")
    raw_text_data: Optional[str] = Field(None, description="continued pre-training: your raw domain text (a .txt file, or one text "
                                                           "column) for the emitted cpt recipe")
    api_base_url: Optional[str] = Field(None, description="closed models: the OpenAI-compatible endpoint for the emitted recipe")
    api_model: Optional[str] = Field(None, description="closed models: the served model name")
    api_key_env: Optional[str] = Field(None, description="closed models: the environment variable holding the API key")
    usd_per_1m_input_tokens: Optional[float] = Field(None, ge=0, description="closed models: price per 1M input tokens (default: "
                                                     "adaptkit's dated table for known API model names)")
    usd_per_1m_output_tokens: Optional[float] = Field(None, ge=0, description="closed models: price per 1M output tokens")

    @field_validator("model_params_b", "model_active_params_b", mode="before")
    @classmethod
    def _params(cls, value):
        return None if value is None else parse_params_b(value)

    @field_validator("gpu_vram_gb", mode="before")
    @classmethod
    def _gigabytes(cls, value):
        return parse_gigabytes(value)

    @field_validator("budget_usd", "latency_slo_ms", "usd_per_1m_input_tokens", "usd_per_1m_output_tokens", mode="before")
    @classmethod
    def _number(cls, value):
        return None if value is None else parse_number(value)

    @field_validator(
        "num_gpus", "gpus_per_node", "labeled_examples", "preference_pairs", "feedback_labels", "tasks_to_serve",
        "corpus_tokens", "unlabeled_corpus_tokens", "context_window_tokens", "data_p95_tokens", mode="before",
    )
    @classmethod
    def _count(cls, value):
        return None if value is None else parse_count(value)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value):
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"expected a model name or path, got {brief(value)}")
        return value.strip() or None

    @model_validator(mode="after")
    def _hardware_consistent(self):
        if self.gpu_vram_gb > 0 and self.num_gpus == 0:
            raise ValueError(f"gpu_vram_gb is {self.gpu_vram_gb:g} but num_gpus is 0: set num_gpus to at least 1, or gpu_vram_gb to 0")
        if self.num_gpus > 0 and self.gpu_vram_gb == 0:
            raise ValueError(f"num_gpus is {self.num_gpus} but gpu_vram_gb is 0: give the memory per GPU, or set num_gpus to 0")
        if self.gpus_per_node and self.num_gpus % self.gpus_per_node:
            raise ValueError(f"num_gpus {self.num_gpus} does not fill machines of gpus_per_node {self.gpus_per_node} evenly: give a "
                             f"multiple of {self.gpus_per_node}, or gpus_per_node 0 for one machine")
        if self.model_active_params_b is not None and self.model_params_b is not None and self.model_active_params_b > self.model_params_b:
            raise ValueError(f"model_active_params_b ({self.model_active_params_b:g}) is more than model_params_b ({self.model_params_b:g}): "
                             "the active parameters are a part of the total")
        return self

    @property
    def vram_total_gb(self) -> float:
        return self.gpu_vram_gb * self.num_gpus

    @property
    def rl_from_rewards(self) -> bool:
        """RL from verifiable rewards is possible: checkable answers and prompts with reference answers (10 or more)."""
        return self.verifiable_reward and self.labeled_examples >= 10


FIELDS = tuple(Profile.model_fields)
COLUMNS = tuple(name for name in FIELDS if name.endswith("_column"))  # the data's column names: the recipe's data.<name>


def read_answers(path: str | Path) -> dict:
    """Read an answers file (YAML or JSON) into a dict; raise InputError on anything unusable."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            raise InputError(f"{path}: not a regular file (a device or a pipe): give a YAML or JSON answers file")
        if path.is_file() and path.stat().st_size > MAX_ANSWERS_BYTES:
            raise InputError(f"{path}: {path.stat().st_size:,} bytes is not an answers file (they are a few hundred bytes)")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, expected a YAML or JSON answers file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read it ({exc.__class__.__name__}: {exc})") from None
    if not text.strip():
        raise InputError(f"{path}: the file is empty; write answers like `task: classification`")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            from adaptkit._yaml import loads_yaml

            data = loads_yaml(text)
    except (ValueError, Exception) as exc:  # yaml.YAMLError and json.JSONDecodeError
        from adaptkit._yaml import problem

        first = problem(exc)
        raise InputError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {first}") from None
    if isinstance(data, dict) and set(data) == {"answers"} and isinstance(data["answers"], dict):
        data = data["answers"]
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of answers (key: value), got {type(data).__name__}")
    return {str(key): value for key, value in data.items()}


def check_keys(answers: dict, where: str = "answers") -> None:
    """Raise InputError naming unknown keys, with a "did you mean"."""
    problems = []
    for key in answers:
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=1, cutoff=0.6)
            hint = f" (did you mean `{close[0]}`?)" if close else f" (known keys: {', '.join(FIELDS[:6])}, ...)"
            problems.append(f"unknown key `{brief(key)[1:-1]}`{hint}")
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems))


def check_values(answers: dict, where: str) -> None:
    """Check the values of some answers on their own (`--set`), so a bad one is blamed on where it came from; what
    only the whole profile can judge (GPU count against memory) waits for the full check."""
    check_keys(answers, where)
    try:
        Profile(**{"task": "generation", "goal": "behavior", "weight_access": "open", **answers})
    except ValidationError as exc:
        own = [err for err in exc.errors() if err["loc"] and err["loc"][0] in answers]
        if own:
            raise InputError(f"{where}: " + "; ".join(_describe(err) for err in own)) from None


def missing_required(answers: dict) -> list[str]:
    return [key for key in REQUIRED if answers.get(key) in (None, "")]


def build_profile(answers: dict, where: str = "answers") -> Profile:
    """Validate complete answers into a Profile; one InputError line naming each bad field."""
    check_keys(answers, where)
    missing = missing_required(answers)
    if missing:
        raise InputError(
            f"{where}: missing {', '.join(missing)}: add them to the answers file or run `adaptkit advise` in a terminal to be asked"
        )
    try:
        return Profile(**answers)
    except ValidationError as exc:
        raise InputError(f"{where}: " + "; ".join(_describe(err) for err in exc.errors())) from None


def _describe(error: dict) -> str:
    field = ".".join(str(part) for part in error["loc"])
    message = re.sub(r"^(Value error|Assertion failed), ", "", error["msg"])
    if error["type"] == "literal_error":
        return f"{field}: {message[0].lower()}{message[1:]}, got {brief(error['input'])}"
    if field:
        shown = error.get("input")
        got = f", got {brief(shown)}" if not isinstance(shown, dict) and "got" not in message else ""
        return f"{field}: {message[0].lower()}{message[1:]}{got}"
    return message


_INSTRUCT_IN_NAME = re.compile(r"(instruct|chat|-it\b|-sft|assistant|hermes|zephyr)", re.IGNORECASE)


def infer_from_model_name(name: str) -> tuple[Optional[float], Optional[bool]]:
    """Guess (total params in billions, is_base_model) from a model name such as `Qwen2.5-7B-Instruct` or `Mixtral-8x7B`."""
    from adaptkit.estimator.architectures import sizes_from_name

    is_base = False if _INSTRUCT_IN_NAME.search(name) else None
    return sizes_from_name(name)[0], is_base


def model_facts(name: str) -> tuple[dict, str]:
    """Size, active size and context window of a named model, and where they came from: a built-in or local config, else its name."""
    from adaptkit.errors import AdaptkitError
    from adaptkit.estimator.architectures import load_model, sizes_from_name

    try:
        arch = load_model(name, online=False)
    except AdaptkitError:
        arch = None
    if arch is not None:
        def billions(count: int) -> float:  # a tiny model keeps its size (0.000538), not 0.0
            return round(count / 1e9, 3) or float(f"{count / 1e9:.3g}")

        facts = {"model_params_b": billions(arch.total_params),
                 "model_active_params_b": billions(arch.active_params) if arch.is_moe else None,
                 "context_window_tokens": arch.context_window}
        where = "its config.json" if Path(name).expanduser().exists() else f"the built-in config of `{arch.name}`"
        return {k: v for k, v in facts.items() if v is not None}, f"from {where}"
    total, active, how = sizes_from_name(name)
    facts = {key: value for key, value in (("model_params_b", total), ("model_active_params_b", active)) if value is not None}
    return facts, f"read from the model name `{name}`" + (f": {how}" if active is not None else "")


def _said(facts: dict, where: str) -> str:
    shown = ", ".join(f"{key} = {value:,}" if isinstance(value, int) else f"{key} = {value:g}" for key, value in facts.items())
    moe = " (a mixture of experts: memory follows the total, compute the active)" if "model_active_params_b" in facts else ""
    return f"{shown} {where}{moe}"


def resolve(answers: dict, gpus: list | None = None, where: str = "answers") -> tuple[Profile, list[str]]:
    """Fill what the answers leave out (model size and window from its config or name, detected GPUs); return the profile and notes."""
    answers = dict(answers)
    notes: list[str] = []
    check_keys(answers, where)
    if answers.get("model") and answers.get("weight_access") == "open":
        facts, where = model_facts(str(answers["model"]))
        missing = {key: value for key, value in facts.items() if answers.get(key) is None}
        if answers.get("model_params_b") is not None:
            missing.pop("model_active_params_b", None)  # a size the user gave is theirs; do not pair it with the name's
        if missing:
            answers.update(missing)
            notes.append(_said(missing, where))
        _, is_base = infer_from_model_name(str(answers["model"]))
        if answers.get("is_base_model") is None and is_base is not None:
            answers["is_base_model"] = is_base
            notes.append(f"is_base_model = no: `{answers['model']}` looks instruction-tuned")
    if answers.get("weight_access") == "open":
        _fill_gpus(answers, gpus or [], notes)
    elif answers.get("api_model") or answers.get("model"):
        _fill_prices(answers, str(answers.get("api_model") or answers.get("model")), notes)
    return build_profile(answers, where), notes


def api_price(name: str) -> tuple[str, dict, str] | None:
    """(matched name, {input, output, training}, date checked) from the dated price table, by the longest prefix."""
    from adaptkit._yaml import load_yaml

    table = load_yaml(Path(__file__).parent / "data" / "prices.yaml")
    tail = name.rsplit("/", 1)[-1].strip().lower()
    matches = [key for key in table["models"] if tail.startswith(key)]
    if not matches:
        return None
    best = max(matches, key=len)
    return best, table["models"][best], str(table["checked"])


def _fill_prices(answers: dict, name: str, notes: list[str]) -> None:
    keys = {"input": "usd_per_1m_input_tokens", "output": "usd_per_1m_output_tokens"}
    if all(answers.get(key) is not None for key in keys.values()):
        return
    found = api_price(name)
    if found is None:
        return
    matched, prices, checked = found
    filled = [f"{key} = {prices[kind]:g}" for kind, key in keys.items() if answers.get(key) is None and kind in prices]
    for kind, key in keys.items():
        if answers.get(key) is None and kind in prices:
            answers[key] = prices[kind]
    notes.append(f"{', '.join(filled)}: list prices of `{matched}` in adaptkit's table (checked {checked}; prices change, "
                 "so set yours in the answers)")


def _fill_gpus(answers: dict, gpus: list, notes: list[str]) -> None:
    """Take GPU count and memory from detection where the answers do not give them."""
    given_vram, given_count = "gpu_vram_gb" in answers, "num_gpus" in answers
    if given_vram and given_count:
        return
    if gpus:
        if not given_count:
            answers["num_gpus"] = len(gpus)
        if not given_vram:
            answers["gpu_vram_gb"] = round(min(g.memory_gb for g in gpus), 1)
        answers.setdefault("gpu_kind", gpus[0].kind)
        if gpus[0].kind == "mps":
            notes.append(f"Apple silicon detected: {gpus[0].name}; its GPU may use ~{gpus[0].memory_gb:.0f} GB; 16-bit training "
                         "only (QLoRA and 8-bit optimizers need bitsandbytes on a CUDA or ROCm GPU)")
        else:
            notes.append(f"GPUs detected: {len(gpus)} x {gpus[0].name} ({gpus[0].memory_gb:.0f} GB each)")
        return
    if given_vram:
        try:
            has_memory = parse_gigabytes(answers["gpu_vram_gb"]) > 0
        except ValueError:
            return  # build_profile reports the bad value
        answers["num_gpus"] = 1 if has_memory else 0
    elif given_count:
        answers["gpu_vram_gb"] = 0
    else:
        answers["num_gpus"], answers["gpu_vram_gb"] = 0, 0
        notes.append("no GPU detected and none given: gpu_vram_gb = 0")
