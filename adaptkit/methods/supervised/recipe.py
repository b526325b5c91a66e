"""Supervised fine-tuning: all weights (`full_finetuning`, `instruction_tuning`), adapters (`lora_adapters`: LoRA,
QLoRA or IA3) and soft prompts (`prefix_prompt_tuning`). Trained by Transformers' Trainer (classification) or TRL's
SFTTrainer (causal LM), with PEFT for adapters."""

from __future__ import annotations

from typing import Callable, Literal, Optional, Union

from pydantic import Field, model_validator

from adaptkit.errors import InputError
from adaptkit.methods.base import MethodDef, RecipeBase, Strict, input_path
from adaptkit.methods.registry import register

SUPERVISED = dict(runner="adaptkit.methods.supervised.runner:train", data="adaptkit.methods.supervised.data:load_splits",
                  summary="adaptkit.methods.supervised.dryrun:data_summary", metrics=("accuracy", "neg_eval_loss"), objective="sft")
BOTH_TASKS = ("sequence_classification", "causal_lm")
UNET_LORA_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")  # a UNet's attention, as diffusers' LoRA training adapts it
SAMPLE_PROMPTS, SAMPLE_STEPS = 4, 20  # text to image: eval captions drawn before and after training (fixed seeds), denoising steps
VISION_TOWER = r".*(vision_tower|vision_model|visual)\..*"  # LoRA stays off the image encoder (LLaVA, Idefics, Qwen-VL names)
MEDIA_LORA = {  # task -> the emitted LoRA block's fields and learning rate (None: the method's): PEFT names no default modules
    "image_classification": ({"target_modules": ("q_proj", "v_proj")}, None),  # ViT/DeiT attention (transformers 5), as PEFT's guide
    "image_text_to_text": ({"target_modules": "all-linear"}, None),  # the language model's linear layers (the tower is left out)
    "speech_recognition": ({"target_modules": ("q_proj", "v_proj")}, 1e-3),  # as PEFT's Whisper LoRA example
    "text_to_image": ({"target_modules": UNET_LORA_TARGETS, "r": 4, "alpha": 4, "dropout": 0.0}, 1e-4),  # diffusers' LoRA defaults
}
DEMO_MODELS = {"examples/audio/whisper-demo": ("conv1", "conv2", "proj_out"),
               "examples/images/llava-tiny": ("multi_modal_projector", "lm_head")}
WEIGHT_TASKS = (*BOTH_TASKS, "image_classification", "image_text_to_text", "speech_recognition")  # all weights or adapters train these too (soft prompts do not)
LORA_INIT_DIR = "initial_adapter"  # PiSSA/OLoRA: the adapter as initialised (in output_dir) until the trained one is converted
# to plain LoRA; PEFT names the adapter after the folder, so no leading dot


class LoraConfigBlock(Strict):
    r: int = Field(8, ge=1, description="rank of the update matrices")
    alpha: int = Field(16, ge=1, description="scaling (alpha / r multiplies the update)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: Union[Literal["all-linear"], list[str], None] = Field(
        None, description="modules to adapt: a list, `all-linear`, or null for PEFT's default for the architecture")
    quantization: Literal["none", "8bit", "4bit"] = Field("none", description="load the base in 8 or 4 bits (QLoRA; needs CUDA and bitsandbytes)")
    use_dora: bool = Field(False, description="DoRA: learn each weight's magnitude apart from its direction (PEFT use_dora; "
                                              "more activation memory, see estimate)")
    use_rslora: bool = Field(False, description="rsLoRA: scale the update by alpha / sqrt(r) instead of alpha / r (stable at high rank)")
    init: Literal["default", "gaussian", "pissa", "olora"] = Field(
        "default", description="how the adapters start: default (B = 0), gaussian, pissa (the principal singular vectors of each "
                               "weight), olora (a QR decomposition); PEFT's init_lora_weights")
    loraplus_lr_ratio: Optional[float] = Field(None, ge=1, le=1000, description="LoRA+: the B matrices learn this many times faster "
                                                                              "than A (the paper uses 16)")
    modules_to_save: Optional[list[str]] = Field(None, description=(
        "modules trained in full beside the adapters, saved with them (PEFT modules_to_save): continued pre-training trains "
        "the embeddings and output layer, [embed_tokens, lm_head] on Llama/Qwen/Mistral"))

    @model_validator(mode="after")
    def _init_on_a_full_base(self):
        if self.init in ("pissa", "olora") and self.quantization != "none":
            raise ValueError(f"lora.init={self.init} decomposes the base weights: it needs lora.quantization=none")
        return self


class VendorBlock(Strict):
    """A fine-tuning job on an OpenAI-compatible vendor (backend.base_url, backend.model, backend.api_key_env): the data
    converted to the vendor's chat JSONL and checked here; the paid job starts only with `adaptkit run --start-job`."""

    epochs: Optional[int] = Field(None, ge=1, le=50, description="passes over the data (null: the vendor's auto)")
    suffix: Optional[str] = Field(None, min_length=1, max_length=64, description="added to the tuned model's name")
    system: Optional[str] = Field(None, description="a system message put first in every example (the one you will serve with)")
    min_examples: int = Field(10, ge=1, description="the vendor's minimum number of training examples (OpenAI: 10)")
    max_example_tokens: int = Field(65_536, ge=16, description="the vendor's limit per example (OpenAI gpt-4o-mini: 65,536)")
    seed: Optional[int] = Field(None, ge=0, description="the job's seed, for a repeatable job")


class IA3ConfigBlock(Strict):
    target_modules: Optional[list[str]] = Field(None, description="modules to rescale; null for PEFT's default")
    feedforward_modules: Optional[list[str]] = Field(None, description="which of them are feed-forward; null for PEFT's default")


class PrefixConfigBlock(Strict):
    kind: Literal["prompt", "prefix"] = Field("prompt", description="prompt: soft input tokens; prefix: key/value prefixes in every layer")
    num_virtual_tokens: int = Field(20, ge=1, description="number of soft tokens")
    init_text: Optional[str] = Field(None, description="prompt tuning: initialise the soft tokens from this text")


def lora_setup(block: LoraConfigBlock) -> dict:
    """The estimator's view of a LoRA block. PEFT's default targets are the query and value projections."""
    targets = block.target_modules
    return {"adapter": "lora", "lora_r": block.r, "quantization": block.quantization, "dora": block.use_dora,
            "lora_targets": "q_proj,v_proj" if targets is None else targets if isinstance(targets, str) else ",".join(targets),
            "modules_to_save": ",".join(block.modules_to_save or ())}


def _adapters_setup(recipe) -> dict:
    """lora_adapters as the estimator sees it: its LoRA or IA3 block, and a text-to-image run's training resolution
    (`data.image_size`; default the model's own)."""
    fields = lora_setup(recipe.lora) if recipe.lora else {"adapter": "ia3" if recipe.ia3 else "lora"}
    if recipe.task == "text_to_image" and recipe.data.image_size:
        fields["resolution"] = recipe.data.image_size
    return fields


def lora_peft(block: LoraConfigBlock) -> tuple[str, dict]:
    """PEFT's LoraConfig fields; the variants only when chosen (DoRA, rsLoRA, an initialisation)."""
    kwargs = {"r": block.r, "lora_alpha": block.alpha, "lora_dropout": block.dropout, "target_modules": block.target_modules}
    if block.use_dora:
        kwargs["use_dora"] = True
    if block.use_rslora:
        kwargs["use_rslora"] = True
    if block.init != "default":
        kwargs["init_lora_weights"] = block.init
    if block.modules_to_save:
        kwargs["modules_to_save"] = list(block.modules_to_save)
    return "LoraConfig", kwargs


def lora_trl(block: LoraConfigBlock | None) -> dict:
    """The TRL command line's LoRA fields (its ModelConfig) for a LoRA block."""
    if block is None:
        return {}
    fields = {"use_peft": True, "lora_r": block.r, "lora_alpha": block.alpha, "lora_dropout": block.dropout,
              "lora_target_modules": block.target_modules}
    if block.use_dora:
        fields["use_dora"] = True
    if block.use_rslora:
        fields["use_rslora"] = True
    if block.quantization == "4bit":
        fields.update(load_in_4bit=True, bnb_4bit_quant_type="nf4", use_bnb_nested_quant=True)
    elif block.quantization == "8bit":
        fields["load_in_8bit"] = True
    return fields


def lora_lost(block: LoraConfigBlock | None) -> list[str]:
    """LoRA settings the TRL command line cannot express."""
    if block is None:
        return []
    return ([f"lora.init={block.init}: the TRL CLI starts LoRA from PEFT's default"] if block.init != "default" else []) + \
        ([f"lora.loraplus_lr_ratio={block.loraplus_lr_ratio:g}: the TRL CLI has no LoRA+ optimizer"] if block.loraplus_lr_ratio else [])


def _sft_trl(recipe: RecipeBase) -> tuple[str, dict, list] | None:
    """`trl sft`: full weights or LoRA (the TRL command line has no IA3 and no soft prompts)."""
    if recipe.adapter in ("prompt", "prefix", "vendor"):
        return None
    lost = ["ia3: the TRL CLI trains LoRA adapters only"] if recipe.adapter == "ia3" else []
    return "sft", lora_trl(getattr(recipe, "lora", None)), lost + lora_lost(getattr(recipe, "lora", None))


def sft_trainer(recipe: RecipeBase) -> dict:
    """The trainer config's own fields: SFTConfig for causal LMs; for classifiers, TrainingArguments with token counts
    not averaged across processes (a classifier's loss is a mean over sequences, so averaging would scale it)."""
    if recipe.task == "causal_lm":
        return {"max_length": recipe.training.max_length, "packing": recipe.training.packing}
    if recipe.task == "image_text_to_text":  # truncation would cut image tokens out of their image: TRL keeps rows whole
        return {"max_length": None}
    return {"average_tokens_across_devices": False}


SFT_TEMPLATE = {"__TRL_IMPORT__": "from trl import SFTConfig, SFTTrainer", "__CONFIG__": "SFTConfig", "__TRAINER__": "SFTTrainer",
                "__PREFERENCE__": "None"}


def sft_export(recipe: RecipeBase) -> tuple[str, dict]:
    if recipe.adapter == "vendor":
        raise InputError("a vendor fine-tuning job has no training script: `adaptkit run RECIPE` writes the converted data and "
                         "the exact calls (start_job.sh); `--start-job` starts it")
    if recipe.task == "sequence_classification":
        return "classification.py.tmpl", {}
    if recipe.task in ("image_classification", "speech_recognition"):
        return f"{recipe.task}.py.tmpl", {}
    if recipe.task == "image_text_to_text":
        return "image_text_to_text.py.tmpl", {"__VISION_TOWER__": repr(VISION_TOWER),
                                              "__FREEZE_VISION__": repr(bool(getattr(recipe, "freeze_vision_tower", False)))}
    if recipe.task == "text_to_image":
        block = recipe.lora
        lora = {"r": block.r, "lora_alpha": block.alpha, "lora_dropout": block.dropout,
                "target_modules": block.target_modules if block.target_modules else list(UNET_LORA_TARGETS)}
        return "text_to_image.py.tmpl", {"__LORA__": repr(lora), "__SAMPLE_PROMPTS__": repr(SAMPLE_PROMPTS),
                                         "__SAMPLE_STEPS__": repr(SAMPLE_STEPS), "__IMAGE_SIZE__": repr(recipe.data.image_size)}
    return "causal_lm.py.tmpl", SFT_TEMPLATE


class DistillBlock(Strict):
    """Distillation: a teacher answers the training prompts, its answers (filtered by the task's scorer where the rows
    hold references) are what the student (the recipe's model) trains on; teacher and student are scored on the same
    eval rows and priced per 1,000 requests. The teacher is the backend block's endpoint (backend.kind openai: a closed
    or served model; its answers cached in backend.cache_dir, so an interrupted run resumes), or `teacher_model`."""

    teacher_model: Optional[str] = input_path("a local causal LM as the teacher (instead of the backend endpoint)", "model", default=None)
    objective: Literal["sft", "gkd"] = Field(
        "sft", description="sft: the student trains on the teacher's answers; gkd: also on the local teacher's token "
                           "probabilities, on its own samples too (TRL's GKD; the teacher must share the student's tokenizer)")
    lmbda: float = Field(0.5, ge=0, le=1, description="gkd: the share of steps trained on the student's own samples (on-policy)")
    beta: float = Field(0.5, ge=0, le=1, description="gkd: the generalised Jensen-Shannon interpolation (0: forward KL, 1: reverse KL)")
    max_new_tokens: int = Field(256, ge=1, description="tokens the teacher may write per answer")
    min_score: Optional[float] = Field(None, description="keep a teacher answer only when its score against the row's reference "
                                                         "(the scorer's primary metric) reaches this; rows without a reference are kept")
    usd_per_1m_input_tokens: Optional[float] = Field(None, ge=0, description="the teacher's input price (default: adaptkit's price "
                                                                             "table for known API model names)")
    usd_per_1m_output_tokens: Optional[float] = Field(None, ge=0, description="the teacher's output price")
    gpu_hour_usd: float = Field(1.0, ge=0, description="what an hour of the GPU that trains and serves the student costs")
    student_requests_per_second: Optional[float] = Field(None, gt=0, description="requests a second the student serves on that GPU "
                                                                                 "(default: measured, where the run had a GPU)")


class DistilledRecipe(RecipeBase):
    """A supervised recipe that may learn from a teacher's answers (`distill`)."""

    distill: Optional[DistillBlock] = Field(None, description="learn from a teacher's answers to the training prompts (distillation)")

    def check(self) -> None:
        if self.distill is None:
            return
        if self.task != "causal_lm":
            raise ValueError("`distill` teaches a causal LM from a teacher's answers: set task: causal_lm")
        if self.data.messages_column:
            raise ValueError("`distill` asks the teacher single prompts (data.prompt_column): unset data.messages_column")
        if self.distill.objective == "gkd" and not self.distill.teacher_model:
            raise ValueError("`distill.objective: gkd` reads the teacher's token probabilities: set distill.teacher_model to a local "
                             "model with the student's tokenizer (an endpoint gives text only: use objective sft)")
        if self.distill.teacher_model is None and (self.backend.kind != "openai" or not self.backend.base_url):
            raise ValueError("`distill` needs a teacher: backend.kind=openai with backend.base_url and backend.model, or "
                             "distill.teacher_model=PATH for a local one")


    @property
    def contacts_backend(self) -> bool:
        return self.distill is not None and self.distill.teacher_model is None  # the teacher endpoint


class FullFinetuningRecipe(DistilledRecipe):
    method: Literal["full_finetuning"] = Field(description="every weight trains")
    freeze_vision_tower: bool = Field(False, description="image + text to text: the vision tower keeps its weights; the projector "
                                                         "and the language model train (less memory: no gradients or optimizer "
                                                         "states for the tower)")

    def check(self) -> None:
        super().check()
        if self.freeze_vision_tower and self.task != "image_text_to_text":
            raise ValueError("freeze_vision_tower is for `task: image_text_to_text` (a model with a vision tower)")


class InstructionTuningRecipe(DistilledRecipe):
    method: Literal["instruction_tuning"] = Field(description="every weight of a causal LM trains on instruction data")


class LoraAdaptersRecipe(DistilledRecipe):
    method: Literal["lora_adapters"] = Field(description="small trainable adapters on a frozen model")
    lora: Optional[LoraConfigBlock] = Field(None, description="LoRA / QLoRA settings")
    ia3: Optional[IA3ConfigBlock] = Field(None, description="IA3 settings (instead of lora)")
    vendor: Optional[VendorBlock] = Field(None, description="a vendor's fine-tuning job instead (a closed model the vendor tunes; "
                                                            "vendor tuning is adapter-based)")

    def check(self) -> None:
        super().check()
        if self.vendor is not None and self.distill is not None:
            raise ValueError("`distill` trains the student here; a `vendor` job trains elsewhere: use one of them")
        if sum(block is not None for block in (self.lora, self.ia3, self.vendor)) != 1:
            raise ValueError("`method: lora_adapters` needs exactly one of the blocks `lora`, `ia3` or `vendor`")
        if self.task == "text_to_image" and (self.lora is None or self.lora.quantization != "none" or self.lora.use_dora or self.lora.use_rslora
                                             or self.lora.init != "default" or self.lora.loraplus_lr_ratio or self.lora.modules_to_save):
            raise ValueError("a text-to-image LoRA (diffusers' UNet) takes lora.r, alpha, dropout and target_modules; its other "
                             "variants (quantization, DoRA, rsLoRA, init, LoRA+, modules_to_save) are not offered for it")
        if self.vendor is not None and (self.backend.kind != "openai" or not self.backend.base_url):
            raise ValueError("`vendor` tunes on an OpenAI-compatible endpoint: set backend.kind=openai, backend.base_url, "
                             "backend.model and backend.api_key_env")

    @property
    def adapter(self) -> str:
        return "lora" if self.lora else "ia3" if self.ia3 else "vendor"


class PrefixPromptTuningRecipe(DistilledRecipe):
    method: Literal["prefix_prompt_tuning"] = Field(description="trainable soft tokens (or key/value prefixes) on a frozen model")
    prefix_prompt_tuning: Optional[PrefixConfigBlock] = Field(None, description="soft prompt settings")

    REQUIRED = ("prefix_prompt_tuning",)

    @property
    def adapter(self) -> str:
        return self.prefix_prompt_tuning.kind


def _adapter_peft(recipe: LoraAdaptersRecipe, model: str) -> tuple[str, dict]:
    if recipe.lora:
        return lora_peft(recipe.lora)
    return "IA3Config", {"target_modules": recipe.ia3.target_modules, "feedforward_modules": recipe.ia3.feedforward_modules}


def _soft_prompt_peft(recipe: PrefixPromptTuningRecipe, model: str) -> tuple[str, dict]:
    block = recipe.prefix_prompt_tuning
    if block.kind == "prefix":
        return "PrefixTuningConfig", {"num_virtual_tokens": block.num_virtual_tokens}
    if block.init_text:
        return "PromptTuningConfig", {"num_virtual_tokens": block.num_virtual_tokens, "prompt_tuning_init": "TEXT",
                                      "prompt_tuning_init_text": block.init_text, "tokenizer_name_or_path": model}
    return "PromptTuningConfig", {"num_virtual_tokens": block.num_virtual_tokens}


def _soft_prompt_export(recipe: PrefixPromptTuningRecipe) -> tuple[str, dict]:
    if recipe.adapter == "prefix" and recipe.task == "causal_lm":
        raise InputError("prefix tuning of a causal LM does not run on the installed TRL (see adaptkit run), so it is not exported: "
                         "use prefix_prompt_tuning.kind=prompt")
    return sft_export(recipe)


def _emit(blocks: Callable[[bool], dict] = lambda classification: {}, learning_rate=(5e-5, 2e-5), min_steps=(None, None),
          demo_epochs=(3, 3)):
    """advise --emit-recipe for a supervised method: the demo or the user's data of the profile's task, and this method's
    blocks. Each pair is (classification, instructions): the learning rate, the fewest optimizer steps on the user's data
    (the epochs follow from its rows; None: the emitter's own floor), and the epochs on the demo's rows."""
    def emit(profile, context) -> dict:
        classification = profile.task == "classification"
        which = 0 if classification else 1
        fields = context.training_data("classification" if classification else "instructions", min_steps=min_steps[which])
        fields["training"]["learning_rate"] = learning_rate[which]
        if not profile.train_data:
            fields["training"]["epochs"] = demo_epochs[which]
        own = blocks(classification)
        if fields["task"] in MEDIA_LORA and "lora" in own:
            lora, rate = MEDIA_LORA[fields["task"]]
            own["lora"].update({k: list(v) if isinstance(v, tuple) else v for k, v in lora.items()})
            if rate:
                fields["training"]["learning_rate"] = rate
            for demo, untrained in DEMO_MODELS.items():  # a demo model is untrained: the parts LoRA cannot reach train in full
                if fields["model"].endswith(demo):
                    own["lora"]["modules_to_save"] = list(untrained)
        return {**fields, **own}
    return emit


def _emit_full(profile, context) -> dict:
    """Full weights; a causal LM taught to follow instructions is instruction tuning."""
    fields = _emit()(profile, context)
    if profile.task != "classification" and profile.goal == "instruction_following":
        fields["method"] = "instruction_tuning"
    return fields


def _lora_block(classification: bool) -> dict:
    return {"lora": {"r": 8 if classification else 16, "alpha": 16 if classification else 32, "dropout": 0.05,
                     "target_modules": None if classification else "all-linear", "quantization": "none"}}


# LoRA on a classifier trains its new head from scratch beside rank-8 deltas: the shipped lora_cls takes 2e-3 for 160
# steps, and on 170 rows of reviews 66 steps at 1e-3 stayed at chance (0.33) where 110 at 2e-3 scored 1.0
LORA_STEPS = (150, None)
SOFT_PROMPT_STEPS = (150, 150)  # 20 virtual tokens learn slowly: the shipped prompt_tuning_cls takes 300 steps
VENDOR_MODEL = "gpt-4o-mini-2024-07-18"  # a closed model the vendor tunes, when the answers name none


def _emit_adapters(profile, context) -> dict:
    """LoRA on open weights; on a closed model the vendor tunes, the vendor's fine-tuning job (vendor tuning is adapter-based)."""
    fields = _emit(_lora_block, (2e-3, 2e-4), LORA_STEPS, (8, 3))(profile, context)
    if profile.weight_access != "closed_api_ft":
        return fields
    fields.pop("lora")
    fields["model"] = profile.api_model or profile.model or VENDOR_MODEL
    fields["vendor"] = {"epochs": 3, "min_examples": 10}
    context.notes[:] = [n for n in context.notes if not n.startswith("model:")]
    context.notes.append(f"the vendor tunes {fields['model']}: `adaptkit run` writes your data as its chat JSONL, checks it and writes the "
                         "calls (start_job.sh); `--start-job` uploads it and starts the paid job")
    return fields


CPT_TOKENS = 100_000_000  # raw domain text from which continued pre-training is planned (decision rubric P4; DAPT)
RAW_TEXT_DEMO = ("examples/data/domain_train.txt", "examples/data/domain_eval.txt")


def _plan_cpt(recipe: dict, notes: list[str], context, fit) -> list[tuple[dict, list[str]]]:
    """advise --emit-recipe for a raw corpus: continued pre-training (cpt: packed raw text; LoRA with trainable
    embeddings and output layer, or all weights), then this recipe as instruction tuning of the model it makes.
    Continued pre-training makes a base model, not an assistant (decision rubric; DAPT, arXiv:2004.10964). `fit`
    sizes a stage to the profile's GPUs and returns its notes."""
    p = context.profile
    raw_corpus = (p.unlabeled_corpus_tokens or 0) >= CPT_TOKENS or (p.raw_text_data and p.goal == "domain_adaptation")
    if not raw_corpus or recipe.get("task") != "causal_lm" or "vendor" in recipe:
        return [(recipe, notes)]
    lora = "lora" in recipe
    cpt = {key: value for key, value in recipe.items() if key not in ("data", "scoring")}
    cpt["method"] = "lora_adapters" if lora else "full_finetuning"
    cpt["data"] = {"train": p.raw_text_data or context.demo(RAW_TEXT_DEMO[0]), "text_column": "text",
                   **({"eval_fraction": 0.02} if p.raw_text_data else {"eval": context.demo(RAW_TEXT_DEMO[1])})}
    cpt["training"] = {**recipe["training"], "epochs": 1, "learning_rate": 1e-4 if lora else 2e-5, "packing": True}
    if lora:
        cpt["lora"] = {**recipe["lora"], "modules_to_save": ["embed_tokens", "lm_head"]}
    name = recipe["output_dir"].rpartition("/")[2]
    cpt["output_dir"] = f"runs/{name}-cpt"
    corpus = f"your {p.unlabeled_corpus_tokens:,}-token corpus" if p.unlabeled_corpus_tokens else "your raw text"
    base = f"{cpt['output_dir']}-merged" if lora else cpt["output_dir"]
    if p.labeled_examples is not None and p.labeled_examples < 10 and not p.train_data:  # no pairs to teach an assistant with
        then, stages = f"with instruction pairs, instruction-tune it next (model={base})", 1
    else:
        then, stages = "stage 2 instruction-tunes it", 2
    cpt_notes = [("stage 1 of 2: " if stages == 2 else "") + f"continued pre-training on {corpus if p.raw_text_data else 'the demo raw text'}"
                 + ("" if p.raw_text_data else f" (set data.train=FILE.txt for {corpus})")
                 + f"; it makes a base model, not an assistant: {then}",
                 *(["LoRA with trainable embeddings and output layer (lora.modules_to_save), as Unsloth's continued pre-training guide "
                    "does; the names are Llama/Qwen/Mistral's"] if lora else [])]
    cpt_notes += fit(cpt)
    if stages == 1:
        return [(cpt, cpt_notes)]
    stage = {**recipe, "model": base}
    if stage["method"] == "full_finetuning":
        stage["method"] = "instruction_tuning"
    merge = f"adaptkit merge {cpt['output_dir']} -o {base} && " if lora else ""
    notes = [f"stage 2 of 2: instruction tuning of the stage-1 model ({base}): run after {merge}adaptkit run on stage 1, from the "
             "same folder"] + [n for n in notes if not n.startswith("model:")]
    return [(cpt, cpt_notes), (stage, notes)]


register(MethodDef(id="full_finetuning", recipe=FullFinetuningRecipe, tasks=WEIGHT_TASKS, adapters=("none",),
                   setup=lambda recipe: {"adapter": "none", "freeze_vision": recipe.freeze_vision_tower}, trainer=sft_trainer, export=sft_export, trl=_sft_trl, emit=_emit_full, plan=_plan_cpt,
                   aliases=(("full", ""), ("fft", ""), ("sft", "")), **SUPERVISED))
register(MethodDef(id="instruction_tuning", recipe=InstructionTuningRecipe, tasks=("causal_lm",), adapters=("none",),
                   setup=lambda recipe: {"adapter": "none"}, trainer=sft_trainer, export=sft_export, trl=_sft_trl, emit=_emit(), plan=_plan_cpt,
                   aliases=(("instruct", ""),), **SUPERVISED))
register(MethodDef(id="lora_adapters", recipe=LoraAdaptersRecipe, tasks=(*WEIGHT_TASKS, "text_to_image"), adapters=("lora", "ia3"),
                   setup=_adapters_setup,
                   peft=_adapter_peft, trainer=sft_trainer, export=sft_export, trl=_sft_trl, emit=_emit_adapters, plan=_plan_cpt,
                   aliases=(("lora", ""), ("qlora", "--quantization 4bit"), ("dora", "--dora"), ("ia3", "--adapter ia3"), ("adapters", "")),
                   **SUPERVISED))
register(MethodDef(id="prefix_prompt_tuning", recipe=PrefixPromptTuningRecipe, tasks=BOTH_TASKS, adapters=("soft_prompt",),
                   setup=lambda recipe: {"adapter": "soft_prompt", "soft_prompt": recipe.prefix_prompt_tuning.kind,
                                         "num_virtual_tokens": recipe.prefix_prompt_tuning.num_virtual_tokens},
                   peft=_soft_prompt_peft, trainer=sft_trainer, export=_soft_prompt_export,
                   emit=_emit(lambda classification: {"prefix_prompt_tuning": {"kind": "prompt", "num_virtual_tokens": 20}},
                              (3e-2, 3e-2), SOFT_PROMPT_STEPS, (10, 10)),
                   aliases=(("prompt_tuning", ""), ("prefix_tuning", "--soft-prompt prefix"), ("soft_prompt", "")), **SUPERVISED))
