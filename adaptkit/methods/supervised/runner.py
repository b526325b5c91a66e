"""Train and evaluate a supervised recipe: Transformers Trainer (classification) or TRL SFTTrainer (causal LM), on the
training core (adaptkit.runners.core)."""

from __future__ import annotations

import math
from pathlib import Path

from adaptkit.errors import InputError
from adaptkit.methods.base import RunOptions, RunResult, trainer_kwargs
from adaptkit.methods.supervised.recipe import SAMPLE_PROMPTS
from adaptkit.models import resolve_model
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.core import (
    causal_tokenizer, cuda_available, evaluate_untrained, load_model, load_tokenizer, peft_config, prepare_adapters, run_trainer, start, with_precision,
)
from adaptkit.runners.data import Splits, label_key

def _check_prefix_support(model) -> None:
    """PEFT prefix tuning for classification needs a model whose forward takes past_key_values."""
    import inspect

    names = set(inspect.signature(model.forward).parameters)
    backbone = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if backbone is not None:
        names |= set(inspect.signature(backbone.forward).parameters)
    if "past_key_values" not in names:
        import peft
        import transformers

        raise InputError(
            f"prefix tuning cannot run on {model.__class__.__name__} with transformers {transformers.__version__} and "
            f"peft {peft.__version__}: its forward takes no past_key_values. Use prefix_prompt_tuning.kind=prompt "
            "(recipe prompt_tuning_cls), or prefix tuning on a causal LM (task causal_lm)"
        )



def _training_arguments(recipe: Recipe, out: Path, has_eval: bool, sft: bool):
    kwargs = with_precision(recipe, trainer_kwargs(recipe, out, has_eval))
    distill = getattr(recipe, "distill", None)
    if sft and distill is not None and distill.objective == "gkd":  # GKD's config is SFT's plus the teacher's terms
        import os

        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
        from trl.experimental.gkd import GKDConfig

        return GKDConfig(**kwargs, lmbda=distill.lmbda, beta=distill.beta, max_new_tokens=recipe.training.max_new_tokens, temperature=0.9)
    if sft:
        from trl import SFTConfig

        return SFTConfig(**kwargs)
    from transformers import TrainingArguments

    return TrainingArguments(**kwargs)



def _classification_trainer(recipe: Recipe, splits: Splits, out: Path, args, callbacks):
    from datasets import Dataset
    from peft import TaskType, get_peft_model
    from transformers import DataCollatorWithPadding, Trainer

    d = recipe.data
    labels = splits.labels
    label2id = {str(label): i for i, label in enumerate(labels)}
    tokenizer = load_tokenizer(recipe)
    model = load_model(recipe, "classifier", num_labels=len(labels), id2label={i: str(label) for i, label in enumerate(labels)},
                       label2id=label2id)
    if tokenizer.pad_token is None:  # decoder classifiers: pad with EOS
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    config = peft_config(recipe, TaskType.SEQ_CLS)
    if config is not None:
        if recipe.adapter == "prefix":
            _check_prefix_support(model)
        model = get_peft_model(model, config)
    model, _, optimizers, finish = prepare_adapters(recipe, model, None, recipe.training.learning_rate, out)

    def encode(rows):
        ds = Dataset.from_dict({"text": [r[d.text_column] for r in rows],
                                "label": [label2id[str(label_key(r[d.label_column]))] for r in rows]})
        return ds.map(lambda b: tokenizer(b["text"], truncation=True, max_length=recipe.training.max_length),
                      batched=True, remove_columns=["text"])

    trainer = Trainer(model=model, args=args, train_dataset=encode(splits.train),
                      eval_dataset=encode(splits.eval) if splits.eval else None, processing_class=tokenizer,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy_metrics(len(labels)),
                      callbacks=callbacks, optimizers=optimizers)
    return trainer, tokenizer, finish


def accuracy_metrics(classes: int):
    """A classifier's compute_metrics for the Trainer: accuracy and macro-F1 of the arg-max class."""
    import numpy as np

    def metrics(prediction):
        logits, gold = prediction
        predicted = np.argmax(logits[0] if isinstance(logits, tuple) else logits, axis=-1)
        return {"accuracy": float((predicted == gold).mean()), "f1_macro": _f1_macro(gold, predicted, classes)}
    return metrics


def _image_trainer(recipe: Recipe, splits: Splits, out: Path, args, callbacks):
    """Transformers' Trainer on AutoModelForImageClassification: a new head for the recipe's labels (a pretrained head of
    another size is replaced), LoRA/IA3 through PEFT with that head trained in full beside the adapters, the images opened
    and processed per batch (a dataset transform: a large image set is never held in memory)."""
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import DefaultDataCollator, Trainer

    from adaptkit.methods.supervised.images import open_image
    from adaptkit.runners.predict import image_processor

    d, labels = recipe.data, splits.labels
    label2id = {str(label): i for i, label in enumerate(labels)}
    processor = image_processor(resolve_model(recipe.model), recipe.trust_remote_code)
    config = peft_config(recipe, None)
    _peft_targets_known(recipe, config, "ViT/DeiT: [q_proj, v_proj]")
    model = load_model(recipe, "image_classifier", num_labels=len(labels), id2label={i: str(label) for i, label in enumerate(labels)},
                       label2id=label2id, ignore_mismatched_sizes=True)
    if config is not None:
        head = {name for name, _ in model.named_children() if name != model.base_model_prefix}  # ViT's `classifier`
        config.modules_to_save = sorted(set(config.modules_to_save or []) | head)
        model = get_peft_model(model, config)
    model, _, optimizers, finish = prepare_adapters(recipe, model, None, recipe.training.learning_rate, out)

    def transform(batch):
        return {"pixel_values": processor([open_image(r) for r in batch["image"]], return_tensors="pt")["pixel_values"],
                "labels": batch["label"]}

    def dataset(rows):
        return Dataset.from_dict({"image": [r[d.image_column] for r in rows],
                                  "label": [label2id[str(label_key(r[d.label_column]))] for r in rows]}).with_transform(transform)

    args.remove_unused_columns = False  # the transform reads the image column the model's forward does not name
    args.include_num_input_tokens_seen = "no"  # it would count pixel values as tokens
    trainer = Trainer(model=model, args=args, train_dataset=dataset(splits.train), eval_dataset=dataset(splits.eval) if splits.eval else None,
                      processing_class=processor, data_collator=DefaultDataCollator(), compute_metrics=accuracy_metrics(len(labels)),
                      callbacks=callbacks, optimizers=optimizers)
    return trainer, processor, finish


def _peft_targets_known(recipe: Recipe, config, example: str) -> None:
    """An adapter with no target modules needs PEFT's default for the architecture: said in one line, from the model's
    config alone, before its weights load (PEFT names none for vision or speech encoders)."""
    if config is None or config.target_modules is not None:
        return
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING, TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    from transformers import AutoConfig

    kind = AutoConfig.from_pretrained(resolve_model(recipe.model), trust_remote_code=recipe.trust_remote_code).model_type
    known = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING if recipe.adapter == "lora" else TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING
    if kind not in known:
        raise InputError(f"PEFT has no default modules to adapt in a {kind} model: set {recipe.adapter}.target_modules ({example}"
                         + (", and ia3.feedforward_modules" if recipe.adapter == "ia3" else "") + ")")


def _speech_trainer(recipe: Recipe, splits: Splits, out: Path, args, callbacks):
    """Transformers' Trainer on a Whisper-style AutoModelForSpeechSeq2Seq: log-mel features from the model's own
    feature extractor, the transcript's tokens (after the language/task prefix) as labels, LoRA through PEFT on the
    modules the recipe names. Clips are read per batch in the collator."""
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import Trainer

    from adaptkit.runners.predict import speech_labels, speech_processor

    d = recipe.data
    processor = speech_processor(resolve_model(recipe.model), recipe.trust_remote_code, d.language)
    config = peft_config(recipe, None)
    _peft_targets_known(recipe, config, "Whisper: [q_proj, v_proj]")
    model = load_model(recipe, "speech_seq2seq")
    if config is not None:
        model = get_peft_model(model, config)
    model, _, optimizers, finish = prepare_adapters(recipe, model, None, recipe.training.learning_rate, out)
    start = model.config.decoder_start_token_id

    def collate(rows):
        return speech_labels(processor, [r["audio"] for r in rows], [r["text"] for r in rows], start)

    def dataset(rows):
        return Dataset.from_dict({"audio": [r[d.audio_column] for r in rows], "text": [r[d.text_column] for r in rows]})

    args.remove_unused_columns = False  # the collator reads the clip and the transcript
    args.include_num_input_tokens_seen = "no"  # it would count mel features as tokens
    trainer = Trainer(model=model, args=args, train_dataset=dataset(splits.train), eval_dataset=dataset(splits.eval) if splits.eval else None,
                      processing_class=processor, data_collator=collate, callbacks=callbacks, optimizers=optimizers)
    return trainer, processor, finish


def _vlm_trainer(recipe: Recipe, splits: Splits, out: Path, args, callbacks):
    """TRL's SFTTrainer on an AutoModelForImageTextToText with its processor (TRL's vision data collator: images
    processed per batch, the loss on the answer only): each row as the image(s), the user's turn and the answer. LoRA
    goes on the language model (and the projector where the targets name it), never the vision tower."""
    from datasets import Dataset, Image, List
    from trl import SFTTrainer

    from adaptkit.methods.supervised.images import DATA_URL, as_chat
    from adaptkit.methods.supervised.recipe import VISION_TOWER

    d = recipe.data
    processor = vlm_processor(recipe)
    model = load_model(recipe, "image_text_to_text")
    from peft import TaskType

    config = peft_config(recipe, TaskType.CAUSAL_LM)
    if config is not None and getattr(config, "exclude_modules", "absent") is None:
        config.exclude_modules = VISION_TOWER
    if getattr(recipe, "freeze_vision_tower", False):  # full fine-tuning with the tower kept as it is
        import re

        for name, parameter in model.named_parameters():
            if re.fullmatch(VISION_TOWER, name):
                parameter.requires_grad_(False)
    model, config, optimizers, finish = prepare_adapters(recipe, model, config, recipe.training.learning_rate, out)

    def image(reference: str):
        if reference.startswith(DATA_URL):
            import base64

            return {"bytes": base64.b64decode(reference.partition(",")[2]), "path": None}
        return reference

    def dataset(rows):
        chats = [as_chat(row, d) for row in rows]
        return Dataset.from_dict({"images": [[image(r) for r in refs] for refs, _, _ in chats], "prompt": [p for _, p, _ in chats],
                                  "completion": [[{"role": "assistant", "content": [{"type": "text", "text": a}]}] for _, _, a in chats]}
                                 ).cast_column("images", List(Image()))

    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset(splits.train), eval_dataset=dataset(splits.eval) if splits.eval else None,
                         processing_class=processor, peft_config=config, callbacks=callbacks, optimizers=optimizers)
    return trainer, processor, finish


def vlm_processor(recipe: Recipe):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(resolve_model(recipe.model), trust_remote_code=recipe.trust_remote_code)


def _diffusion_trainer(recipe: Recipe, splits: Splits, out: Path, args, callbacks):
    """LoRA on a Stable Diffusion UNet as diffusers' text-to-image LoRA training does (the VAE encodes each image to
    latents, noise is added at a random timestep, the UNet predicts it from the noisy latents and the caption's text
    states; the loss is the mean squared error), with the Trainer running the loop: the checkpoints, resume and
    processes every recipe has. Evaluation draws its noise from a seed fixed per batch, so the loss before and after
    training is measured on the same noise. The LoRA is saved in the format diffusers' `load_lora_weights` reads."""
    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import DefaultDataCollator, Trainer

    from adaptkit.methods.supervised.images import open_image
    from adaptkit.methods.supervised.recipe import UNET_LORA_TARGETS

    from adaptkit.runners.predict import diffusion_pipeline

    d, block = recipe.data, recipe.lora
    pipe = diffusion_pipeline(recipe.model, recipe.trust_remote_code)
    size = d.image_size or pipe.unet.config.sample_size * pipe.vae_scale_factor
    from peft import LoraConfig

    pipe.vae.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    pipe.unet.requires_grad_(False)
    pipe.unet.add_adapter(LoraConfig(r=block.r, lora_alpha=block.alpha, lora_dropout=block.dropout, init_lora_weights="gaussian",
                                     target_modules=list(block.target_modules or UNET_LORA_TARGETS)
                                     if block.target_modules != "all-linear" else "all-linear"))
    model = _denoiser(pipe)
    tokenizer = pipe.tokenizer

    def transform(batch):
        from PIL import ImageOps

        pictures = [ImageOps.fit(open_image(r), (size, size)) for r in batch["image"]]
        pixels = torch.stack([torch.from_numpy(np.asarray(p, dtype=np.float32)).permute(2, 0, 1) for p in pictures])
        ids = tokenizer(batch["caption"], max_length=tokenizer.model_max_length, padding="max_length", truncation=True,
                        return_tensors="pt").input_ids
        return {"pixel_values": pixels / 127.5 - 1, "input_ids": ids}

    def dataset(rows):
        return Dataset.from_dict({"image": [r[d.image_column] for r in rows], "caption": [r[d.text_column] for r in rows]}).with_transform(transform)

    args.remove_unused_columns = False  # the transform reads the image and caption columns
    args.include_num_input_tokens_seen = "no"
    args.label_names = ["pixel_values"]  # the target is the image's noise: the evaluation computes the loss

    def finish(trainer) -> None:
        _save_diffusion_lora(pipe, out)
        rows = splits.eval or splits.train
        _sample_grid(pipe, [r[d.text_column] for r in rows[:SAMPLE_PROMPTS]], out)

    trainer = Trainer(model=model, args=args, train_dataset=dataset(splits.train), eval_dataset=dataset(splits.eval) if splits.eval else None,
                      data_collator=DefaultDataCollator(), callbacks=callbacks)
    return trainer, tokenizer, finish


def _denoiser(pipe):
    """The training objective as a module the Trainer runs: forward(pixel_values, input_ids) -> {"loss"}. Its
    state_dict holds the trainable (LoRA) weights only, so checkpoints stay small."""
    import torch
    import torch.nn.functional as F

    class Denoiser(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unet, self.vae, self.text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
            self.scheduler = pipe.scheduler

        def forward(self, pixel_values, input_ids):
            # evaluation: the same noise for the same batch, before and after training
            generator = None if self.training else torch.Generator(device=pixel_values.device).manual_seed(int(input_ids.sum()))
            with torch.no_grad():
                latents = self.vae.encode(pixel_values).latent_dist.sample(generator) * self.vae.config.scaling_factor
                states = self.text_encoder(input_ids)[0]
            noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
            steps = torch.randint(0, self.scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator,
                                  device=latents.device)
            noisy = self.scheduler.add_noise(latents, noise, steps)
            target = self.scheduler.get_velocity(latents, noise, steps) if self.scheduler.config.prediction_type == "v_prediction" else noise
            predicted = self.unet(noisy, steps, states).sample
            return {"loss": F.mse_loss(predicted.float(), target.float())}

        def state_dict(self, *args, **kwargs):
            trained = {name for name, p in self.named_parameters() if p.requires_grad}
            return {k: v for k, v in super().state_dict(*args, **kwargs).items() if k in trained}

    return Denoiser()


def _save_diffusion_lora(pipe, out: Path) -> None:
    """The UNet's LoRA as diffusers writes it (pytorch_lora_weights.safetensors, read by `pipe.load_lora_weights`)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    StableDiffusionPipeline.save_lora_weights(str(out), unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet)),
                                              safe_serialization=True)
    (out / "model.safetensors").unlink(missing_ok=True)  # the Trainer's copy of the same weights, in its own layout


def _sample_grid(pipe, prompts: list[str], out: Path) -> None:
    """samples.png: each prompt drawn with its own fixed seed by the base (top row) and with the LoRA (bottom row), and
    samples.json saying which; what a text-to-image run is judged by, beside the held-out denoising loss."""
    import json

    import torch
    from PIL import Image

    from adaptkit.methods.supervised.recipe import SAMPLE_STEPS

    def draw(adapted: bool) -> list:
        (pipe.unet.enable_adapters if adapted else pipe.unet.disable_adapters)()
        return [pipe(prompt, num_inference_steps=SAMPLE_STEPS, generator=torch.Generator().manual_seed(seed), output_type="pil").images[0]
                for seed, prompt in enumerate(prompts)]

    rows = [draw(False), draw(True)]
    pipe.unet.enable_adapters()
    width, height = rows[0][0].size
    scale = max(1, 128 // width)  # small images are shown larger (nearest neighbour: no smoothing)
    grid = Image.new("RGB", (width * scale * len(prompts), height * scale * 2), "white")
    for y, row in enumerate(rows):
        for x, image in enumerate(row):
            grid.paste(image.resize((width * scale, height * scale), Image.NEAREST), (x * width * scale, y * height * scale))
    grid.save(out / "samples.png")
    (out / "samples.json").write_text(json.dumps({"prompts": prompts, "seeds": list(range(len(prompts))), "steps": SAMPLE_STEPS,
                                                  "rows": ["base (adapters off)", "trained"]}, indent=2) + "\n", encoding="utf-8")


def _f1_macro(gold, predicted, classes: int) -> float:
    scores = []
    for c in range(classes):
        tp = int(((predicted == c) & (gold == c)).sum())
        fp = int(((predicted == c) & (gold != c)).sum())
        fn = int(((predicted != c) & (gold == c)).sum())
        if tp + fp + fn == 0:
            continue  # a class absent from both: it does not count
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(sum(scores) / len(scores)) if scores else 0.0



def _causal_trainer(recipe: Recipe, splits: Splits, out: Path, args, callbacks):
    from datasets import Dataset
    from trl import SFTTrainer

    d = recipe.data
    tokenizer = causal_tokenizer(recipe.model, recipe.trust_remote_code)
    model = load_model(recipe)
    if splits.kind == "text":  # continued pre-training: language modelling on every token (TRL's "text" datasets)
        def rows_to(rows):
            return Dataset.from_dict({"text": [r[d.text_column] for r in rows]})
    elif d.messages_column:
        if not getattr(tokenizer, "chat_template", None):
            raise InputError(f"data.messages_column is set but the tokenizer of {recipe.model} has no chat template: "
                             "use prompt/response columns or a chat model")

        def rows_to(rows):
            return Dataset.from_dict({"messages": [r[d.messages_column] for r in rows]})
    else:
        def rows_to(rows):
            return Dataset.from_dict({"prompt": [r[d.prompt_column] for r in rows],
                                      "completion": [" " + r[d.response_column].lstrip() for r in rows]})
    from peft import TaskType

    config = peft_config(recipe, TaskType.CAUSAL_LM)
    model, config, optimizers, finish = prepare_adapters(recipe, model, config, recipe.training.learning_rate, out)
    distill = getattr(recipe, "distill", None)
    if distill is not None and distill.objective == "gkd":
        return _gkd_trainer(recipe, splits, args, callbacks, tokenizer, model, config, optimizers), tokenizer, finish
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows_to(splits.train),
                         eval_dataset=rows_to(splits.eval) if splits.eval else None, processing_class=tokenizer,
                         peft_config=config, callbacks=callbacks, optimizers=optimizers)
    if splits.kind == "instructions" and not d.messages_column and not getattr(tokenizer, "chat_template", None):
        from adaptkit.runners.predict import PLAIN_TEMPLATE

        tokenizer.chat_template = PLAIN_TEMPLATE  # saved with the run (after TRL read the data): serve's chat sends what it trained on
    if len(trainer.train_dataset) == 0:  # TRL drops examples whose response is truncated away entirely
        raise InputError(f"no training example keeps a response token within training.max_length={recipe.training.max_length}: "
                         "the prompts are that long; raise training.max_length (`--dry-run` shows the lengths) or shorten the prompts")
    return trainer, tokenizer, finish



def _gkd_trainer(recipe: Recipe, splits: Splits, args, callbacks, tokenizer, model, config, optimizers):
    """Generalised knowledge distillation (Agarwal et al., arXiv:2306.13649) through TRL's GKDTrainer: the student
    matches the local teacher's token distributions on the teacher's answers and, `lmbda` of the time, on its own
    samples. The two must share a tokenizer (the same vocabulary)."""
    from datasets import Dataset
    from trl.experimental.gkd import GKDTrainer  # its config came from _training_arguments

    block, d = recipe.distill, recipe.data
    if len(causal_tokenizer(block.teacher_model, recipe.trust_remote_code)) != len(tokenizer):
        raise InputError(f"distill.objective gkd: the teacher {block.teacher_model} and the student {recipe.model} have different "
                         "vocabularies: GKD compares their token probabilities, so they must share a tokenizer (or use objective sft)")
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(f"distill.objective gkd trains on chat messages: the tokenizer of {recipe.model} has no chat template")
    teacher = load_model(recipe, name=block.teacher_model)

    def rows_to(rows):
        return Dataset.from_dict({"messages": [[{"role": "user", "content": r[d.prompt_column]},
                                                {"role": "assistant", "content": r[d.response_column]}] for r in rows]})

    return GKDTrainer(model=model, teacher_model=teacher, args=args, train_dataset=rows_to(splits.train),
                      eval_dataset=rows_to(splits.eval) if splits.eval else None, processing_class=tokenizer, peft_config=config,
                      callbacks=callbacks, optimizers=optimizers)


def _trainer(recipe: Recipe):
    """The trainer builder of the recipe's task: (trainer, tokenizer or processor, finish)."""
    if recipe.task == "image_classification":
        return _image_trainer
    if recipe.task == "speech_recognition":
        return _speech_trainer
    if recipe.task == "image_text_to_text":
        return _vlm_trainer
    if recipe.task == "text_to_image":
        return _diffusion_trainer
    return _causal_trainer if recipe.task == "causal_lm" else _classification_trainer


def train(recipe: Recipe, splits: Splits, options: RunOptions) -> RunResult | None:
    """Train, evaluate, save. Returns the result on the main process (None on other ranks)."""
    if recipe.adapter == "vendor":  # the vendor trains: convert, check, and start the job only when asked
        from adaptkit.methods.supervised.vendor import run_vendor_job

        return run_vendor_job(recipe, splits, options)
    start(recipe)
    if recipe.adapter == "prefix" and recipe.task == "causal_lm":
        import peft
        import trl

        raise InputError(
            f"prefix tuning of a causal LM fails in TRL's SFTTrainer (trl {trl.__version__}, peft {peft.__version__}) with an "
            "attention-mask size mismatch in its fused-loss forward: use prefix_prompt_tuning.kind=prompt, or LoRA"
        )
    sft = recipe.task in ("causal_lm", "image_text_to_text")
    teacher = None
    if getattr(recipe, "distill", None) is not None:  # the teacher's answers are the training data
        from adaptkit.methods.supervised.distill import teach

        splits, teacher = teach(recipe, splits, options.out)
    before: dict = {}

    def build(out: Path, callbacks):
        args = _training_arguments(recipe, out, bool(splits.eval), sft)
        built = _trainer(recipe)(recipe, splits, out, args, callbacks)
        if splits.kind in ("text", "captions") and splits.eval:  # the base's held-out loss, by the same evaluation, before any step
            before.update(evaluate_untrained(built[0], options.show_training))
        if splits.kind == "image_questions" and splits.eval:  # the base's answers to the same questions, before any step
            from adaptkit.runners.predict import answer_images

            rows = splits.eval[:recipe.training.generate_eval or len(splits.eval)]
            before["answers"] = answer_images(built[0].model, built[1], rows, recipe.data, recipe.training.max_new_tokens)
        if splits.kind == "speech" and splits.eval:  # the base's transcripts of the same clips, before any step
            from adaptkit.runners.predict import transcribe

            rows = splits.eval[:recipe.training.generate_eval or len(splits.eval)]
            before["transcripts"] = transcribe(built[0].model, built[1], [r[recipe.data.audio_column] for r in rows], recipe.data.language)
        return built

    def scores(trainer, tokenizer, evaluation: dict) -> dict:
        if splits.kind == "captions":
            return _denoising(evaluation, before)
        if splits.kind == "image_questions":
            from adaptkit.runners.predict import score_answers

            loss = evaluation.get("eval_loss")
            return {"loss": loss, "perplexity": _perplexity(loss), **score_answers(recipe, trainer.model, tokenizer, splits.eval, before,
                                                                                  options.out)}
        if splits.kind == "speech":
            from adaptkit.runners.predict import score_transcripts

            return {"loss": evaluation.get("eval_loss"), **score_transcripts(recipe, trainer.model, tokenizer, splits.eval, before, options.out)}
        if not sft:
            return {"loss": evaluation.get("eval_loss"), "accuracy": evaluation.get("eval_accuracy"),
                    "f1_macro": evaluation.get("eval_f1_macro"), **_majority_baseline(recipe, splits, evaluation)}
        if splits.kind == "text":
            return _perplexities(evaluation, before)
        from adaptkit.runners.predict import generate_and_score

        loss = evaluation.get("eval_loss")
        return {"loss": loss, "perplexity": _perplexity(loss),
                **generate_and_score(recipe, trainer.model, tokenizer, splits.eval, options.out)}

    result = run_trainer(recipe, options, build, scores, labels=splits.labels)
    if teacher is not None and result is not None:
        from adaptkit.methods.supervised.distill import ANSWERS_FILE, report

        result.metrics["distill"] = report(recipe, teacher, result.metrics)
        result.artifacts.append(ANSWERS_FILE)
    return result


def _denoising(evaluation: dict, before: dict) -> dict:
    """Text to image: the held-out denoising loss (the same noise and timesteps each time) after training and the base's
    before it, lower is better; the sample grid beside it shows what the numbers mean."""
    from adaptkit.runners.scoring import delta

    after = {"denoising_loss": evaluation.get("eval_loss")}
    result = {"loss": after["denoising_loss"], **after, "primary_metric": "denoising_loss"}
    if before.get("eval_loss") is not None and after["denoising_loss"] is not None:
        base = {"denoising_loss": before["eval_loss"]}
        result.update(base={**base, "kind": "the model before training, on the same noise"}, delta=delta(after, base))
    return result


def _perplexity(loss: float | None) -> float | None:
    return math.exp(min(loss, 50)) if loss is not None else None


def _perplexities(evaluation: dict, before: dict) -> dict:
    """Raw text: held-out loss and perplexity after training, and the base's before it (lower is better)."""
    from adaptkit.runners.scoring import delta

    after = {"loss": evaluation.get("eval_loss"), "perplexity": _perplexity(evaluation.get("eval_loss"))}
    if before.get("eval_loss") is None or after["loss"] is None:
        return after
    base = {"loss": before["eval_loss"], "perplexity": _perplexity(before["eval_loss"])}
    return {**after, "base": {**base, "kind": "the model before training, on the same held-out text"}, "delta": delta(after, base)}


def _majority_baseline(recipe: Recipe, splits: Splits, evaluation: dict) -> dict:
    """A classifier's base: the new head is untrained before training, so the unadapted model's best guess is the
    training data's most common label for every row. Scored with the same scorer; plus the eval throughput."""
    from collections import Counter

    from adaptkit.methods.scorers import SCORERS
    from adaptkit.runners.scoring import delta, plain, proportion_interval

    column = recipe.data.label_column
    out = {"primary_metric": "accuracy"}
    if evaluation.get("eval_samples_per_second"):
        out["throughput"] = {"rows_per_second": evaluation["eval_samples_per_second"], "device": "cuda" if cuda_available() else "cpu",
                             "batch_size": recipe.training.batch_size, "what": "the Trainer's evaluation pass"}
    if not splits.eval or evaluation.get("eval_accuracy") is None:
        return out
    common = Counter(str(label_key(r[column])) for r in splits.train).most_common(1)[0][0]  # labels as training maps them
    gold = [str(label_key(r[column])) for r in splits.eval]
    base = plain(SCORERS["classification"].score([common] * len(gold), gold))
    scored = {"accuracy": evaluation["eval_accuracy"], "f1_macro": evaluation.get("eval_f1_macro")}
    return {**out, "base": {**{k: round(v, 6) for k, v in base.items()}, "kind": f"majority class ({common})"},
            "delta": delta({k: v for k, v in scored.items() if v is not None}, base),
            "interval": proportion_interval(evaluation["eval_accuracy"], len(gold), "accuracy")}


