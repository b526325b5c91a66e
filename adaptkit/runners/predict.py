"""Use a finished run: load its model the way its README says (an adapter on its base, or the saved model), with the
run's own tokenizer, chat template, label names and max_length, and predict on rows in batches.

A classifier gives each row its label and every class's probability; a causal LM generates greedily from the prompt
(or the chat so far) with the run's chat template. Where the rows hold the answer (the recipe's label or response
column), the predictions are scored: accuracy and macro-F1 for a classifier, exact match for generations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adaptkit.errors import InputError, one_line
from adaptkit.methods.base import AUTO
from adaptkit.models import resolve_model
from adaptkit.recipe.schema import Recipe

CLASSIFIER = "sequence_classification"
IMAGES = "image_classification"
CLASSIFIERS = (CLASSIFIER, IMAGES)  # tasks whose answers are labels (labels.json, accuracy)
SPEECH = "speech_recognition"
VLM = "image_text_to_text"
DRAWS = "text_to_image"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # a text-to-image run's LoRA, as diffusers writes and reads it

TRANSCRIPTS_FILE = "samples.jsonl"  # a speech run's transcripts of the eval clips, beside the references


@dataclass
class Run:
    """A finished run folder: its resolved recipe, the folder holding the weights, and its label names."""

    folder: Path
    recipe: Recipe
    weights: Path  # the run itself, or its policy/ (RLHF)
    labels: list[str]
    allow_code: bool = False  # the caller allows the run's own scorer code (a run folder is data: never its own say)

    @property
    def adapter(self) -> bool:
        return (self.weights / "adapter_config.json").is_file()


def open_run(folder: str, allow_code: bool = False, trust_remote_code: bool = False, drawing: bool = False,
             column: str | None = None, answer_column: str | None = None) -> Run:
    """Read a finished run, or say in one line why the folder is not one. A run folder is data: the code it names (a
    scorer) runs only with the caller's `allow_code`, the model's own code only with the caller's `trust_remote_code`;
    the folder's recipe.yaml cannot allow either. `drawing`: the caller draws with a text-to-image run (predict).
    `column` / `answer_column`: the new rows' own names for what the model reads and for the answers (read_as)."""
    from adaptkit.recipe.load import load_recipe

    path = Path(folder).expanduser()
    if not (path / "recipe.yaml").is_file() or not (path / "metrics.json").is_file():
        raise InputError(f"{folder}: not a finished adaptkit run (no recipe.yaml and metrics.json): give a run's output folder")
    recipe, _, _ = load_recipe(str(path / "recipe.yaml"))
    if recipe.trust_remote_code and not trust_remote_code:
        raise InputError(f"{folder}: its recipe.yaml sets trust_remote_code: true, so loading it runs Python code shipped with "
                         f"{recipe.model}: pass --trust-remote-code if you trust where this run came from")
    recipe = read_as(recipe.model_copy(update={"allow_code": allow_code}), column, answer_column)
    if not recipe.definition.trains or recipe.adapter == "vendor":
        raise InputError(f"{folder}: a {recipe.method} run trains no weights here: nothing to load "
                         "(training-free methods run with `adaptkit run`)")
    if recipe.task == DRAWS:
        if not drawing:
            raise InputError(f"{folder}: a text-to-image LoRA: draw with `adaptkit predict {folder} PROMPTS -o drawn.jsonl`, or with "
                             f"diffusers (pipe.load_lora_weights('{folder}'), as its README shows)")
        if not (path / LORA_WEIGHTS).is_file():
            raise InputError(f"{folder}: no {LORA_WEIGHTS} in this run (did it stop before saving?)")
        return Run(path, recipe, path, [], allow_code)
    weights = path / "policy" if (path / "policy" / "adapter_config.json").is_file() else path
    if not (weights / "adapter_config.json").is_file() and not (weights / "config.json").is_file():
        raise InputError(f"{folder}: no saved model or adapter in this run (was it a staged run that stopped early?)")
    check_saved(weights, folder)
    labels_file = path / "labels.json"
    labels = json.loads(labels_file.read_text(encoding="utf-8")) if labels_file.is_file() else []
    if recipe.task in CLASSIFIERS and not labels:
        raise InputError(f"{folder}: a classifier run without labels.json: the class names are unknown")
    return Run(path, recipe, weights, [str(label) for label in labels], allow_code)


def read_as(recipe: Recipe, column: str | None, answer_column: str | None) -> Recipe:
    """The run's recipe reading rows under their own column names: `column` holds what the model reads (a classifier's
    text, a causal LM's prompt or messages, an image or a clip), `answer_column` what it is scored against (the label,
    the reference answer, the transcript)."""
    d, update = recipe.data, {}
    if column:
        update[{CLASSIFIER: "text_column", IMAGES: "image_column", SPEECH: "audio_column", DRAWS: "text_column"}.get(
            recipe.task, "messages_column" if d.messages_column else "prompt_column")] = column
    if answer_column:
        if recipe.task == DRAWS:
            raise InputError("--answer-column: a text-to-image run's pictures are not scored")
        if recipe.task not in (*CLASSIFIERS, SPEECH) and d.messages_column:
            raise InputError("--answer-column: a chat run's answer is the last assistant turn of its messages; it has no "
                             "column of its own")
        key = {CLASSIFIER: "label_column", IMAGES: "label_column", SPEECH: "text_column"}.get(recipe.task, "response_column")
        update[key] = answer_column
    return recipe.model_copy(update={"data": d.model_copy(update=update)}) if update else recipe


def check_saved(weights: Path, folder) -> None:
    """A run's saved adapter or model is whole before anything loads it: its config is JSON (an adapter's of a PEFT
    type this PEFT knows), and each weights file it needs is there with a readable safetensors header."""
    import struct

    adapter = (weights / "adapter_config.json").is_file()
    config_file = weights / ("adapter_config.json" if adapter else "config.json")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(f"{folder}: {config_file.name} is not readable JSON: the run's files are damaged") from None
    if not isinstance(config, dict):
        raise InputError(f"{folder}: {config_file.name} is not a JSON object: the run's files are damaged")
    if adapter:
        from peft.utils import PeftType

        if config.get("peft_type") not in {t.value for t in PeftType}:
            raise InputError(f"{folder}: adapter_config.json names peft_type {str(config.get('peft_type'))[:40]!r}, which this PEFT "
                             "does not know")
    names = ["adapter_model.safetensors", "adapter_model.bin"] if adapter else ["model.safetensors", "model.safetensors.index.json",
                                                                                "pytorch_model.bin"]
    present = [weights / name for name in names if (weights / name).is_file()]
    if not present:
        raise InputError(f"{folder}: no weights file ({' or '.join(names[:2])}): the run's files are incomplete")
    for file in present:
        if file.suffix != ".safetensors":
            continue
        try:
            with open(file, "rb") as handle:
                size = struct.unpack("<Q", handle.read(8))[0]
                if size <= 0 or size > 100_000_000 or not isinstance(json.loads(handle.read(size)), dict):
                    raise ValueError
            if file.stat().st_size < 8 + size:
                raise ValueError
        except (OSError, ValueError, struct.error):
            raise InputError(f"{folder}: {file.name} is cut short or damaged (its safetensors header does not read)") from None


def unscored(run: Run) -> str | None:
    """Why the run's own scorer is left out: it runs code (a module:function, or the code scorer) and the caller did
    not allow it. Then predictions carry no score; nothing the folder names is imported."""
    from adaptkit.recipe.consent import code_refs

    refs = [ref for ref in code_refs(run.recipe) if ref.startswith("scoring.scorer")]
    if refs and not run.allow_code and run.recipe.task not in CLASSIFIERS:  # a classifier's labels are scored by the built-in
        return f"not scored: the run's {refs[0].split(' (')[0]} runs code: pass --allow-code to score with it"
    return None


def load_model(run: Run, dtype=None):
    """(model in eval mode, tokenizer) for a run, on the GPU when there is one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from adaptkit.runners.core import quiet_transformers

    quiet_transformers()
    recipe = run.recipe
    trust = recipe.trust_remote_code
    if recipe.task in (IMAGES, SPEECH, VLM):
        return _processor_model(run, dtype)
    if recipe.task == DRAWS:  # the base pipeline with the run's LoRA
        pipe = diffusion_pipeline(recipe.model, recipe.trust_remote_code)
        pipe.load_lora_weights(str(run.folder))
        return pipe.to("cuda" if torch.cuda.is_available() else "cpu"), pipe.tokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(run.weights if (run.weights / "tokenizer_config.json").is_file() else run.folder),
                                              trust_remote_code=trust)
    extra = {"dtype": dtype} if dtype is not None else {}
    if recipe.task == CLASSIFIER:
        names = {"num_labels": len(run.labels), "id2label": dict(enumerate(run.labels)),
                 "label2id": {label: i for i, label in enumerate(run.labels)}}
        source = resolve_model(recipe.model) if run.adapter else str(run.weights)
        model = AutoModelForSequenceClassification.from_pretrained(source, trust_remote_code=trust, **names, **extra)
    else:
        source = resolve_model(recipe.model) if run.adapter else str(run.weights)
        model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=trust, **extra)
    if run.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(run.weights))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return model, tokenizer


def answer_chat(model, processor, images: list[str], prompt: list[dict], max_new_tokens: int, sampling: dict | None = None,
                where: str = "row", max_pixels: int = 25_000_000) -> tuple[str, int, int]:
    """A vision-language model's answer to chat messages whose image parts are `images` (paths or data URLs), greedy
    unless `sampling` says; with the prompt's and the answer's token counts."""
    import torch

    from adaptkit.methods.supervised.images import open_image

    text = processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    pictures = [open_image(reference, where, max_pixels) for reference in images]
    inputs = processor(images=pictures or None, text=[text], return_tensors="pt").to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    tokenizer = processor.tokenizer
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                **(sampling or {"do_sample": False}))
    new = output[0, inputs["input_ids"].shape[1]:]
    return tokenizer.decode(new, skip_special_tokens=True).strip(), int(inputs["input_ids"].shape[1]), int(new.shape[0])


def answer_images(model, processor, rows: list[dict], d, max_new_tokens: int, progress=lambda done, total: None) -> list[str]:
    """Greedy answers of a vision-language model to rows of images and questions (or chat messages with image parts)."""
    from adaptkit.methods.supervised.images import as_chat

    was_training = model.training
    model.eval()
    out = []
    for number, row in enumerate(rows, 1):
        images, prompt, _ = as_chat(row, d, with_answer=bool(d.messages_column))
        out.append(answer_chat(model, processor, images, prompt, max_new_tokens, where=f"row {number}")[0])
        progress(number, len(rows))
    if was_training:
        model.train()
    return out


def score_answers(recipe: Recipe, model, processor, rows: list[dict], before: dict, out: Path) -> dict:
    """After training a vision-language model: answer the first `training.generate_eval` eval rows, score them with the
    task's scorer (generation: exact match, token F1, ROUGE-L, chrF) beside the model before training; samples.jsonl."""
    from adaptkit.methods.supervised.images import as_chat
    from adaptkit.runners.scoring import task_scorer

    d = recipe.data
    rows = rows[:recipe.training.generate_eval or len(rows)]
    if not rows:
        return {}
    chats = [as_chat(row, d) for row in rows]  # read once: the references and the questions shown in samples.jsonl
    references = [answer or "" for _, _, answer in chats]
    predicted = answer_images(model, processor, rows, d, recipe.training.max_new_tokens)
    scorer = task_scorer(recipe)
    base = before.get("answers")
    samples = [{"prompt": prompt[-1]["content"][-1].get("text", ""), "reference": ref, "prediction": said}
               for (_, prompt, _), ref, said in zip(chats, references, predicted)]
    return _beside_base({**scorer(predicted, references), "rows": len(rows)}, scorer(base, references) if base else None,
                        "rows", samples, base, out)


def _beside_base(result: dict, base: dict | None, what: str, samples: list[dict], base_outputs: list[str] | None,
                 out: Path) -> dict:
    """A media run's generated eval: its metrics with the model's before training on the same `what` (`base`, and the
    `delta`), and its samples, each with the base's output where there is one, in samples.jsonl."""
    from adaptkit._files import write_atomic
    from adaptkit.runners.scoring import delta

    def scores(metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if k not in ("primary_metric", "rows") and isinstance(v, (int, float))}

    if base is not None:
        result["base"] = {**scores(base), "kind": f"the model before training, on the same {what}"}
        result["delta"] = delta(scores(result), base)
    if base_outputs:
        samples = [{**sample, "base": output} for sample, output in zip(samples, base_outputs)]
    write_atomic(out / TRANSCRIPTS_FILE, "".join(json.dumps(sample, ensure_ascii=False) + "\n" for sample in samples))
    return result


def _processor_model(run: Run, dtype=None):
    """(model in eval mode, its processor) for an image classifier, speech or vision-language run: the task's AutoModel
    class, with the run's adapter on its base where it trained one (an image classifier's base with its label head)."""
    import torch
    import transformers
    from transformers import AutoProcessor

    trust = run.recipe.trust_remote_code
    saved = any((run.weights / name).is_file() for name in ("processor_config.json", "preprocessor_config.json"))
    folder = str(run.weights if saved else run.folder)
    task = run.recipe.task
    processor = (speech_processor(folder, trust, run.recipe.data.language) if task == SPEECH else image_processor(folder, trust)
                 if task == IMAGES else AutoProcessor.from_pretrained(folder, trust_remote_code=trust))
    auto = getattr(transformers, AUTO[task][0])
    extra = {"dtype": dtype} if dtype is not None else {}
    if run.adapter:
        from peft import PeftModel

        head = {"num_labels": len(run.labels), "id2label": dict(enumerate(run.labels)), "label2id": {label: i for i, label in enumerate(run.labels)},
                "ignore_mismatched_sizes": True} if task == IMAGES else {}  # the base with a head of the run's labels
        model = PeftModel.from_pretrained(auto.from_pretrained(resolve_model(run.recipe.model), trust_remote_code=trust, **head, **extra),
                                          str(run.weights))
    else:
        model = auto.from_pretrained(str(run.weights), trust_remote_code=trust, **extra)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return model, processor


def speech_processor(name: str, trust: bool, language: str | None):
    """A speech model's processor (feature extractor and tokenizer), its tokenizer's prefix set to transcribe in
    `language` without timestamps (Whisper's)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(name, trust_remote_code=trust)
    tokenizer = getattr(processor, "tokenizer", None)
    if hasattr(tokenizer, "set_prefix_tokens"):
        try:
            tokenizer.set_prefix_tokens(language=language, task="transcribe" if language else None, predict_timestamps=False)
        except ValueError as exc:  # a language Whisper does not know
            raise InputError(f"data.language={language}: {one_line(exc)[:160]}") from None
    return processor


def _features(processor, references: list[str]):
    """The clips' log-mel features, each clip read and checked as the data check does (the model's sample rate, within
    its window: a longer clip would be cut silently)."""
    from adaptkit.methods.supervised.speech import Window, check_clip

    extractor = processor.feature_extractor
    window = Window(extractor.sampling_rate, float(getattr(extractor, "chunk_length", 30)))
    clips = []
    for number, reference in enumerate(references, 1):
        clips.append(check_clip(reference, window, f"clip {number}"))
    return extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt").input_features


def speech_labels(processor, references: list[str], texts: list[str], start: int) -> dict:
    """A training batch: the clips' features and the transcripts' token ids (the model adds its start token; padding is
    -100, ignored by the loss)."""
    encoded = processor.tokenizer(texts, padding=True, return_tensors="pt")
    labels = encoded.input_ids.masked_fill(encoded.attention_mask == 0, -100)
    if (labels[:, 0] == start).all():
        labels = labels[:, 1:]
    return {"input_features": _features(processor, references), "labels": labels}


def transcribe(model, processor, references: list[str], language: str | None, batch_size: int = 16, max_new_tokens: int = 128,
               progress=lambda done, total: None) -> list[str]:
    """Greedy transcripts of clips (paths or data URLs): the model's own generation settings, with the language and task
    where the model's generation config knows languages (Whisper's)."""
    import torch

    was_training = model.training
    model.eval()
    config = model.generation_config
    extra = {"language": language, "task": "transcribe"} if language and getattr(config, "lang_to_id", None) else {}
    limit = max(1, min(max_new_tokens, (getattr(model.config, "max_target_positions", 448) or 448) - 8))
    out = []
    for start in range(0, len(references), batch_size):
        features = _features(processor, references[start:start + batch_size]).to(model.device, dtype=model.dtype)
        with torch.no_grad():
            ids = model.generate(input_features=features, max_new_tokens=limit, **extra)
        out += [text.strip() for text in processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        progress(min(start + batch_size, len(references)), len(references))
    if was_training:
        model.train()
    return out


def _normal_words(text: str) -> str:
    import re

    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def error_rates(predicted: list[str], references: list[str]) -> dict:
    """Word and character error rates (jiwer) after lowercasing and dropping punctuation, as Whisper's basic normaliser does."""
    import jiwer

    pairs = [(_normal_words(r), _normal_words(p)) for r, p in zip(references, predicted) if _normal_words(r)]
    if not pairs:
        return {}
    truth, said = [r for r, _ in pairs], [p for _, p in pairs]
    return {"wer": round(jiwer.wer(truth, said), 6), "cer": round(jiwer.cer(truth, said), 6), "rows": len(pairs)}


def score_transcripts(recipe: Recipe, model, processor, rows: list[dict], before: dict, out: Path) -> dict:
    """After training a speech model: transcribe the first `training.generate_eval` eval clips, score WER and CER against
    the transcripts, beside the untrained model's on the same clips; the transcripts go to samples.jsonl."""
    d = recipe.data
    rows = rows[:recipe.training.generate_eval or len(rows)]
    if not rows:
        return {}
    references = [r[d.text_column] for r in rows]
    predicted = transcribe(model, processor, [r[d.audio_column] for r in rows], d.language, max_new_tokens=recipe.training.max_new_tokens)
    base = before.get("transcripts")
    samples = [{"audio": r[d.audio_column], "reference": ref, "prediction": p} for r, ref, p in zip(rows, references, predicted)]
    return _beside_base({**error_rates(predicted, references), "primary_metric": "wer"},
                        error_rates(base, references) if base else None, "clips", samples, base, out)


def diffusion_pipeline(name: str, trust: bool):
    """A Stable Diffusion (1.x/2.x) pipeline, without its safety checker: what text-to-image LoRA trains."""
    from diffusers import StableDiffusionPipeline

    found = Path(resolve_model(name)) / "model_index.json"
    if found.is_file():
        kind = json.loads(found.read_text(encoding="utf-8")).get("_class_name")
        if kind != "StableDiffusionPipeline":
            raise InputError(f"{name} is a {kind}: adaptkit trains text-to-image LoRA on Stable Diffusion 1.x/2.x pipelines "
                             "(StableDiffusionPipeline) so far")
    pipe = StableDiffusionPipeline.from_pretrained(resolve_model(name), safety_checker=None, requires_safety_checker=False,
                                                   trust_remote_code=trust)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _require_text(rows: list[dict], column: str, missing: str, what: str) -> None:
    """Every row holds non-empty text in `column`, or one line names the first that does not."""
    bad = next((n for n, row in enumerate(rows, 1) if not isinstance(row.get(column), str) or not row[column].strip()), None)
    if bad is not None:
        others = [str(name) for name in rows[bad - 1]] if column not in rows[bad - 1] else []
        named = f"; its columns are {', '.join(others)}: name the one to read with --column NAME" if others else ""
        raise InputError(f"row {bad}: {missing} in column `{column}` ({what}{named})")


def draw(run: Run, rows: list[dict], images_dir: Path | None, loaded, progress) -> list[dict]:
    """A text-to-image run's pictures of the rows' prompts (data.text_column), each with its row's `seed` (default
    its index) and `steps` (default the sample grid's), saved as PNG files in `images_dir`; each row gets its file."""
    import torch

    from adaptkit.methods.supervised.recipe import SAMPLE_STEPS

    if images_dir is None:
        raise InputError("a text-to-image run draws files: give an output (predict -o FILE writes the pictures beside it)")
    column = run.recipe.data.text_column
    _require_text(rows, column, "no prompt", "the caption column this run trained on")
    pipe, _ = loaded or load_model(run)
    images_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for number, row in enumerate(rows):
        seed, steps = int(row.get("seed", number)), int(row.get("steps", SAMPLE_STEPS))
        picture = pipe(row[column], num_inference_steps=steps, generator=torch.Generator().manual_seed(seed)).images[0]
        path = images_dir / f"{number:05d}.png"
        picture.save(path)
        out.append({**row, "seed": seed, "steps": steps, "image": str(path)})
        progress(number + 1, len(rows))
    return out


def image_processor(name: str, trust: bool):
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(name, trust_remote_code=trust)


def classify_images(model, processor, run: Run, rows: list[dict], base: Path, batch_size: int, progress) -> list[dict]:
    """Each row's label and every class's probability, for rows naming an image (a path relative to `base`, or a data URL)."""
    import torch

    from adaptkit.methods.supervised.images import open_image, resolve

    column, out = run.recipe.data.image_column, []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        images = []
        for number, row in enumerate(batch, start + 1):
            if column not in row:
                raise InputError(f"row {number}: no `{column}` (the image column this classifier was trained on; name "
                                 "yours with --column NAME)")
            images.append(open_image(resolve(row[column], base, f"row {number}"), f"row {number}"))
        values = processor(images, return_tensors="pt")["pixel_values"].to(model.device, dtype=model.dtype)
        with torch.no_grad():
            probabilities = torch.softmax(model(pixel_values=values).logits.float(), dim=-1).cpu()
        for row, p in zip(batch, probabilities):
            out.append({**row, "prediction": run.labels[int(p.argmax())],
                        "probabilities": {label: round(float(v), 6) for label, v in zip(run.labels, p)}})
        progress(min(start + batch_size, len(rows)), len(rows))
    return out


def classify(model, tokenizer, run: Run, rows: list[dict], batch_size: int, progress) -> list[dict]:
    import torch

    column = run.recipe.data.text_column
    missing = next((i for i, row in enumerate(rows, 1) if not isinstance(row.get(column), str)), None)
    if missing:
        raise InputError(f"row {missing}: no text in column `{column}` (the column this classifier was trained on; name "
                         "yours with --column NAME)")
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        encoded = tokenizer([r[column] for r in batch], truncation=True, max_length=run.recipe.training.max_length,
                            padding=True, return_tensors="pt").to(model.device)
        with torch.no_grad():
            probabilities = torch.softmax(model(**encoded).logits.float(), dim=-1).cpu()
        for row, p in zip(batch, probabilities):
            best = int(p.argmax())
            out.append({**row, "prediction": run.labels[best],
                        "probabilities": {label: round(float(v), 6) for label, v in zip(run.labels, p)}})
        progress(min(start + batch_size, len(rows)), len(rows))
    return out


def prompts_of(run: Run, rows: list[dict], tokenizer) -> list[str]:
    """The text a causal LM continues, as it saw it in training: the chat so far through the run's chat template (a
    final assistant turn is the reference, left out), or the prompt column."""
    d = run.recipe.data
    prompts = []
    for number, row in enumerate(rows, 1):
        if d.messages_column and isinstance(row.get(d.messages_column), list):
            turns = row[d.messages_column]
            history = turns[:-1] if turns and turns[-1].get("role") == "assistant" else turns
            prompts.append(tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True))
        elif not d.messages_column and isinstance(row.get(d.prompt_column), str):
            prompts.append(row[d.prompt_column])
        else:
            wanted = d.messages_column or d.prompt_column
            raise InputError(f"row {number}: no `{wanted}` column (what this model was trained to continue; name yours with "
                             "--column NAME)")
    return prompts


def _generate(model, tokenizer, run: Run, rows: list[dict], batch_size: int, max_new_tokens: int, progress) -> list[dict]:
    import torch

    prompts = prompts_of(run, rows, tokenizer)
    specials = not run.recipe.data.messages_column  # TRL tokenizes a plain prompt with the tokenizer's own special tokens
    tokenizer.padding_side = "left"  # generation continues every row from its own last token
    out = []
    for start in range(0, len(rows), batch_size):
        batch = [as_trained(tokenizer, prompt, specials, run.recipe.training.max_length) for prompt in prompts[start:start + batch_size]]
        encoded = tokenizer.pad({"input_ids": batch}, return_tensors="pt").to(model.device)
        inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}  # no token_type_ids (BERT-style)
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        new = generated[:, encoded["input_ids"].shape[1]:]
        for row, tokens in zip(rows[start:start + batch_size], new):
            out.append({**row, "prediction": tokenizer.decode(tokens, skip_special_tokens=True).strip()})
        progress(min(start + batch_size, len(rows)), len(rows))
    return out


PLAIN_MARK = "adaptkit: the prompt/response format this run trained on"
PLAIN_TEMPLATE = (  # a system message then the user's text, as the prompt column was; an answer follows after a space, as TRL's completion
    "{#- " + PLAIN_MARK + " -#}"
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n{% elif m['role'] == 'user' %}{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def plain_template(tokenizer) -> bool:
    """Whether the tokenizer's chat template is PLAIN_TEMPLATE: its text then gets the special tokens training gave it."""
    return PLAIN_MARK in (getattr(tokenizer, "chat_template", None) or "")


def as_trained(tokenizer, prompt: str, specials: bool, max_length: int) -> list[int]:
    """A prompt's token ids as TRL trained on them: with the tokenizer's special tokens, but without an end token the
    tokenizer appends after every text (BERT-style [SEP]): TRL's completion starts where the prompt's tokens and the
    prompt+completion's diverge, which is before that token. Truncated from the left, keeping the prompt's end."""
    ids = tokenizer(prompt, add_special_tokens=specials)["input_ids"]
    ends = {tokenizer.eos_token_id, getattr(tokenizer, "sep_token_id", None)} - {None}
    if specials and len(ids) > 1 and ids[-1] in ends and ids[-1] not in tokenizer(prompt, add_special_tokens=False)["input_ids"][-1:]:
        ids = ids[:-1]
    return ids[-max_length:]


def score(run: Run, predicted: list[dict]) -> dict | None:
    """The recipe's scorer (adaptkit.runners.scoring) where the rows hold the answers: classification for a classifier,
    the task's scorer (generation by default: exact match, token F1, ROUGE-L, chrF) for a causal LM."""
    from adaptkit.methods.scorers import SCORERS
    from adaptkit.runners.scoring import task_scorer

    d = run.recipe.data
    if unscored(run):
        return None
    if run.recipe.task == SPEECH:
        if not all(isinstance(r.get(d.text_column), str) for r in predicted):
            return None
        return {**error_rates([r["prediction"] for r in predicted], [r[d.text_column] for r in predicted]), "primary_metric": "wer"}
    if run.recipe.task in CLASSIFIERS:
        from adaptkit.runners.data import label_key

        if not all(d.label_column in r for r in predicted):
            return None
        gold = [str(label_key(r[d.label_column])) for r in predicted]  # as training mapped them: 1.0 and '1' are label 1
        metrics = SCORERS["classification"].score([r["prediction"] for r in predicted], gold)
        unknown = sorted(set(gold) - set(run.labels))
        return {**metrics, "primary_metric": "accuracy", "rows": len(gold), **({"labels_not_trained": unknown} if unknown else {})}
    answered = [(r["prediction"], ref) for r, ref in zip(predicted, _references(run, predicted)) if ref is not None]
    if not answered:
        return None
    return {**task_scorer(run.recipe)([p for p, _ in answered], [ref for _, ref in answered]), "rows": len(answered)}


def _references(run: Run, rows: list[dict]) -> list[str | None]:
    d = run.recipe.data
    out = []
    for row in rows:
        if d.messages_column and isinstance(row.get(d.messages_column), list) and row[d.messages_column]:
            last = row[d.messages_column][-1]
            out.append(last.get("content") if last.get("role") == "assistant" else None)
        else:
            value = row.get(d.response_column)
            out.append(value if isinstance(value, str) else None)
    return out


def predict(run: Run, rows: list[dict], batch_size: int = 32, max_new_tokens: int = 128,
            progress: Callable[[int, int], None] = lambda done, total: None, loaded=None, base: Path | None = None,
            images_dir: Path | None = None) -> tuple[list[dict], dict | None]:
    """Every row with its prediction (in input order), and the scores where the rows hold the answers. `base`: the
    folder an image row's relative path is read from (its data file's; default the working folder). A text-to-image
    run draws each row's prompt into `images_dir` (a new folder) with the row's `seed` (default its index)."""
    if run.recipe.task == CLASSIFIER:
        _require_text(rows, run.recipe.data.text_column, "no text", "what this classifier reads")
    if not rows:
        raise InputError("no rows to predict on")
    if run.recipe.task == DRAWS:
        return draw(run, rows, images_dir, loaded, progress), None
    model, tokenizer = loaded or load_model(run)
    if run.recipe.task == CLASSIFIER:
        predicted = classify(model, tokenizer, run, rows, batch_size, progress)
    elif run.recipe.task == IMAGES:
        predicted = classify_images(model, tokenizer, run, rows, base or Path.cwd(), batch_size, progress)
    elif run.recipe.task == VLM:
        from adaptkit.methods.supervised.images import image_parts, resolve as locate

        d, where, asked = run.recipe.data, base or Path.cwd(), []
        for number, row in enumerate(rows, 1):  # a resolved copy of each row: the output keeps the paths as given
            if d.messages_column:
                if not isinstance(row.get(d.messages_column), list):
                    raise InputError(f"row {number}: no `{d.messages_column}` (the chat messages this model was trained on)")
                messages = json.loads(json.dumps(row[d.messages_column]))
                image_parts(messages, where, f"row {number}")
                asked.append({d.messages_column: messages})
            elif d.image_column not in row or not isinstance(row.get(d.prompt_column), str):
                raise InputError(f"row {number}: needs `{d.image_column}` and `{d.prompt_column}` (what this model was trained on)")
            else:
                asked.append({**row, d.image_column: locate(row[d.image_column], where, f"row {number}")})
        said = answer_images(model, tokenizer, asked, d, max_new_tokens, progress)
        predicted = [{**row, "prediction": text} for row, text in zip(rows, said)]
    elif run.recipe.task == SPEECH:
        from adaptkit.methods.supervised.speech import resolve as locate

        column = run.recipe.data.audio_column
        missing = next((n for n, row in enumerate(rows, 1) if column not in row), None)
        if missing:
            raise InputError(f"row {missing}: no `{column}` (the audio column this model was trained on)")
        clips = [locate(row[column], base or Path.cwd(), f"row {n}") for n, row in enumerate(rows, 1)]
        said = transcribe(model, tokenizer, clips, run.recipe.data.language, batch_size, max_new_tokens, progress)
        predicted = [{**row, "prediction": text} for row, text in zip(rows, said)]
    else:
        predicted = _generate(model, tokenizer, run, rows, batch_size, max_new_tokens, progress)
    return predicted, score(run, predicted)


def generate_and_score(recipe: Recipe, model, tokenizer, rows: list[dict], out: Path) -> dict:
    """After training a causal LM: generate for the first `training.generate_eval` eval rows with the trained model (the
    run's template, greedy, `training.max_new_tokens`), score them with the recipe's scorer, write samples.jsonl
    (prompt, reference, prediction, per-row token F1) and return the metrics for `eval` (with `primary_metric`, the
    unadapted model's `base` scores on the same rows and the `delta`)."""
    import time

    from adaptkit.methods.scorers import token_f1
    from adaptkit.runners.scoring import delta, plain, task_scorer

    wanted = recipe.training.generate_eval
    run = Run(out, recipe, out, [])
    rows = [r for r, ref in zip(rows, _references(run, rows)) if ref is not None][:wanted]
    if not wanted or not rows:
        return {}
    scorer = task_scorer(recipe)  # a user scorer that cannot import fails before the generation
    model.eval()
    started = time.perf_counter()
    predicted = _generate(model, tokenizer, run, rows, batch_size=8, max_new_tokens=recipe.training.max_new_tokens,
                          progress=lambda done, total: None)
    seconds = time.perf_counter() - started
    references = _references(run, predicted)
    prompts = prompts_of(run, rows, tokenizer)
    answers = [r["prediction"] for r in predicted]
    base_answers = _base_answers(recipe, model, tokenizer, run, rows)
    if scorer.id == "chat" and not recipe.scoring.rubric:  # pairwise: the trained model's answers against the base's
        metrics = scorer(answers, references, requests=prompts, baseline=base_answers)
        base = {"win_rate": 0.5}  # the base against itself
    else:
        metrics = scorer(answers, references, requests=prompts)
        base = plain(scorer(base_answers, references, requests=prompts))
    with open(out / "samples.jsonl", "w", encoding="utf-8") as handle:
        for prompt, reference, answer, before in zip(prompts, references, answers, base_answers):
            handle.write(json.dumps({"prompt": prompt, "reference": reference, "prediction": answer, "base_prediction": before,
                                     "token_f1": round(token_f1(answer, reference), 4)}, ensure_ascii=False) + "\n")
    return {**metrics, "generated_rows": len(predicted), "base": base, "delta": delta(metrics, base),
            "throughput": {"rows_per_second": round(len(predicted) / seconds, 4) if seconds > 0 else None,
                           "device": str(model.device.type), "batch_size": 8, "what": "greedy generation after training"}}


def base_on(run: Run, loaded, rows: list[dict], metrics: dict) -> dict:
    """`base` and `delta` for a causal LM run scored on other rows: the unadapted model's answers to the rows that hold
    a reference, scored by the same scorer."""
    from adaptkit.runners.scoring import delta, plain, task_scorer

    model, tokenizer = loaded
    if run.recipe.task in (SPEECH, VLM):  # their base is measured in training, on the run's own eval rows
        return {}
    answered = [r for r, ref in zip(rows, _references(run, rows)) if ref is not None]
    if not answered or metrics.get("primary_metric") == "win_rate":
        return {}
    scorer = task_scorer(run.recipe)
    base = plain(scorer(_base_answers(run.recipe, model, tokenizer, run, answered), _references(run, answered),
                        requests=prompts_of(run, answered, tokenizer)))
    return {"base": base, "delta": delta(metrics, base)}


def cache_dir() -> Path:
    """adaptkit's own cache (ADAPTKIT_CACHE_DIR, else ~/.cache/adaptkit): the base model's scores, by content hash."""
    import os

    return Path(os.environ.get("ADAPTKIT_CACHE_DIR") or Path.home() / ".cache" / "adaptkit").expanduser()


def _base_answers(recipe: Recipe, model, tokenizer, run: Run, rows: list[dict]) -> list[str]:
    """The unadapted model's answers to the same rows with the same settings: generated once per model and rows
    (cached by the hash of the model, the prompts, the template and the settings), so every run on that data shows
    its delta without generating them again."""
    import hashlib

    from adaptkit._files import write_atomic

    key = hashlib.sha256(json.dumps({"version": 2, "model": recipe.model, "prompts": prompts_of(run, rows, tokenizer),
                                     "max_new_tokens": recipe.training.max_new_tokens, "max_length": recipe.training.max_length,
                                     "template": getattr(tokenizer, "chat_template", None)},
                                    sort_keys=True).encode()).hexdigest()
    cached = cache_dir() / "base_answers" / f"{key}.json"
    if cached.is_file():
        try:
            answers = json.loads(cached.read_text(encoding="utf-8"))
            if isinstance(answers, list) and len(answers) == len(rows):
                return answers
        except ValueError:
            pass  # a damaged cache entry: generate again
    settings = dict(batch_size=8, max_new_tokens=recipe.training.max_new_tokens, progress=lambda done, total: None)
    if hasattr(model, "disable_adapter"):  # an adapter: the base is the same weights with it switched off
        with model.disable_adapter():
            predicted = _generate(model, tokenizer, run, rows, **settings)
    else:  # all weights trained: load the base once more
        import torch
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(resolve_model(recipe.model), trust_remote_code=recipe.trust_remote_code)
        base.to(model.device).eval()
        predicted = _generate(base, tokenizer, run, rows, **settings)
        del base
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    answers = [r["prediction"] for r in predicted]
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cached, json.dumps(answers) + "\n")
    return answers
