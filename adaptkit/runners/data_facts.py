"""`advise --data FILE` and `adaptkit.advise(data=FILE)`: the answers a data file can prove (task, counts, token lengths, split), and where each came from.

Light: the stdlib readers of runners.data and, for token lengths, the `tokenizers` library on a tokenizer.json found
offline (a local model folder, the embedded MiniLM, the Hugging Face cache); a word count otherwise. Never torch.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from adaptkit.errors import InputError
from adaptkit.recipe.emit import held_out
from adaptkit.runners.data import AUDIO_SUFFIXES, IMAGE_SUFFIXES, metadata_file, read_rows

LABEL_COLUMNS = ("label", "labels", "category", "class", "intent", "queue", "target", "sentiment", "topic")
TEXT_COLUMNS = ("text", "body", "content", "sentence", "document", "input", "message", "ticket")
PAIR_COLUMNS = (("prompt", "response"), ("prompt", "completion"), ("instruction", "output"), ("instruction", "response"),
                ("question", "answer"), ("input", "output"), ("query", "response"), ("source", "target"))
TRANSCRIPT_COLUMNS = ("transcription", "transcript", "sentence", "text", "normalized_text", "caption")
CAPTION_COLUMNS = ("prompt", "caption", "text", "description")
WORD_TO_TOKENS = 1.3  # English words per BPE token, when no tokenizer is available offline


class RowsUnclear(InputError):
    """A data file whose columns do not say what its rows are; `columns` lets the wizard ask which is which."""

    def __init__(self, columns: list[str], message: str):
        super().__init__(message)
        self.columns = columns


@dataclass
class DataFacts:
    """What a file proves: answers for the profile, and one line per inference naming its columns."""

    answers: dict = field(default_factory=dict)
    said: list[str] = field(default_factory=list)


def _rating(value):
    from adaptkit.methods.preference.data import rating

    return rating(value)


def _percentile(values: list[int], share: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # chat messages; of content parts (an image beside the text), the text parts
        return "\n".join(_content(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value)
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _content(content) -> str:
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text")
    return str(content)


def _tokenizer(model: str | None):
    """A `tokenizers` tokenizer for the model when one is on disk; None otherwise (then words are counted)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None, ""
    from adaptkit.models import EMBEDDED_NAMES, embedded_minilm

    candidates = []
    if model:
        local = Path(model).expanduser()
        if local.is_dir():
            candidates.append(local / "tokenizer.json")
        elif model in EMBEDDED_NAMES and embedded_minilm():
            candidates.append(embedded_minilm() / "tokenizer.json")
        else:
            try:
                from huggingface_hub import try_to_load_from_cache

                cached = try_to_load_from_cache(model, "tokenizer.json")
                if isinstance(cached, str):
                    candidates.append(Path(cached))
            except Exception:  # no hub library, or a name it rejects: count words instead
                pass
    for path in candidates:
        if path.is_file():
            try:
                tokenizer = Tokenizer.from_file(str(path))
            except Exception:
                continue
            tokenizer.no_truncation()  # measure the data, not the length the model's files cut it to
            tokenizer.no_padding()
            return tokenizer, f"the tokenizer of `{model}`"
    return None, ""


def _lengths(texts: list[str], model: str | None) -> tuple[list[int], str]:
    tokenizer, how = _tokenizer(model)
    if tokenizer is not None:
        return [len(encoding.ids) for encoding in tokenizer.encode_batch(texts)], how
    return [max(1, round(len(text.split()) * WORD_TO_TOKENS)) for text in texts], f"words x {WORD_TO_TOKENS} (no tokenizer on disk)"


def media_kind(value) -> str | None:
    """"image" or "audio" for a value that is one (a path or file name by its suffix, a data URL, a `datasets`
    Image/Audio dict, chat messages with an image or audio part), else None."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("data:image/") or text.endswith(IMAGE_SUFFIXES):
            return "image"
        if text.startswith("data:audio/") or text.endswith(AUDIO_SUFFIXES):
            return "audio"
        return None
    if isinstance(value, dict):
        if "array" in value and "sampling_rate" in value:
            return "audio"
        return media_kind(value.get("path") or value.get("url") or "")
    if isinstance(value, list):
        for message in value:
            parts = message.get("content") if isinstance(message, dict) else None
            for part in parts if isinstance(parts, list) else []:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind in ("image", "image_url"):
                    return "image"
                if kind in ("audio", "input_audio"):
                    return "audio"
    return None


def _media_columns(rows: list[dict], columns: list[str]) -> dict[str, str]:
    """Columns whose values are images or audio in most of the first rows: {column: "image"|"audio"}."""
    sample = rows[:50]
    found = {}
    for column in columns:
        kinds = [media_kind(row.get(column)) for row in sample]
        for kind in ("image", "audio"):
            if kinds.count(kind) >= 0.8 * len(sample):
                found[column] = kind
    return found


def _read(path: str, where: str) -> tuple[list[dict], str]:
    """The rows of a data file, or of a folder in datasets' audiofolder/imagefolder layout (media files beside a
    metadata file whose `file_name` column names them, or one subfolder per class); and what was read, in words."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        rows = read_rows(str(folder), "train", where)
        metadata = metadata_file(folder)
        return rows, (f"{len(rows):,} files listed in {metadata.name}" if metadata else
                      f"{len(rows):,} files in {len({row['label'] for row in rows})} class folders")
    if not folder.is_file():
        raise InputError(f"{where}: no such file (a .jsonl, .csv or .parquet file of examples, or a folder of images or audio)")
    return read_rows(str(folder), "train", where), ""


NAMED = {"text_column": "text", "label_column": "label", "prompt_column": "prompt", "response_column": "response",
         "messages_column": "messages", "chosen_column": "chosen", "rejected_column": "rejected", "completion_column": "completion",
         "image_column": "image", "audio_column": "audio"}  # a column answer -> the name it is read as here


def infer(path: str, model: str | None = None, named: dict | None = None) -> DataFacts:
    """Read FILE (or a folder of media with a metadata file) and return the answers it proves, with what each came from.
    `named`: column answers the user gave (`chosen_column: good`): those columns are read as the ones they name."""
    where = f"--data {path}"
    rows, read = _read(path, where)
    if not rows:
        raise InputError(f"{where}: the file holds no rows")
    columns = list(rows[0])
    lower = {c.lower(): c for c in columns}
    for answer, column in (named or {}).items():
        if answer in NAMED and column:
            if column not in columns:
                raise InputError(f"{where}: {answer}={column}, but the file has no column `{column}` (columns: {', '.join(columns[:12])})")
            lower[NAMED[answer]] = column
    facts = DataFacts()
    facts.answers["train_data"] = str(path)
    n = len(rows)

    def texts_of(*names: str) -> list[str]:
        return ["\n".join(_text(row.get(name)) for name in names) for row in rows]

    media = _media_columns(rows, columns)
    if media:
        found = _media_facts(facts, media, lower, n, read)
        if found is not None:  # speech and text->image rows: their own task; the rest (VLM rows) read on as text rows do
            texts = texts_of(found)
            return _lengths_said(facts, texts, model, n)
    if "chosen" in lower and "rejected" in lower:
        facts.answers.update(task="chat", preference_pairs=n, chosen_column=lower["chosen"], rejected_column=lower["rejected"],
                             **({"prompt_column": lower["prompt"]} if "prompt" in lower else {}))
        facts.said.append(f"{n:,} preference pairs (columns `{lower['chosen']}` / `{lower['rejected']}`): task chat, "
                          "preference_pairs; pairs are what the alignment goal trains on")
        texts = texts_of(*[lower[c] for c in ("prompt", "chosen") if c in lower])
    elif "completion" in lower and "label" in lower and all(_rating(row.get(lower["label"])) is not None for row in rows):
        facts.answers.update(task="chat", feedback_labels=n, completion_column=lower["completion"], label_column=lower["label"],
                             **({"prompt_column": lower["prompt"]} if "prompt" in lower else {}))
        up = sum(bool(_rating(row.get(lower["label"]))) for row in rows)
        facts.said.append(f"{n:,} rated replies, {up:,} up and {n - up:,} down (columns `{lower['completion']}` / `{lower['label']}`): "
                          "task chat, feedback_labels; KTO learns from unpaired ratings")
        texts = texts_of(*[lower[c] for c in ("prompt", "completion") if c in lower])
    elif "messages" in lower or "conversations" in lower:
        column = lower.get("messages") or lower["conversations"]
        facts.answers.update(task="chat", labeled_examples=n, messages_column=column)
        facts.said.append(f"{n:,} conversations (column `{column}`): task chat, labeled_examples")
        texts = texts_of(column)
    elif (pair := next(((lower[a], lower[b]) for a, b in PAIR_COLUMNS if a in lower and b in lower), None)) is not None:
        first, second = pair
        structured = sum(isinstance(row.get(second), dict) or _is_json_object(row.get(second)) for row in rows)
        task = "extraction" if structured >= 0.8 * n else "qa" if first.lower() in ("question", "query") else "generation"
        facts.answers.update(task=task, labeled_examples=n, prompt_column=first, response_column=second)
        why = "its outputs are JSON objects" if task == "extraction" else f"`{first}` -> `{second}`"
        facts.said.append(f"{n:,} input -> output examples (columns `{first}` / `{second}`): task {task} ({why}), labeled_examples")
        texts = texts_of(first, second)
    elif (label := next((lower[c] for c in LABEL_COLUMNS if c in lower), None)) is not None:
        text = next((lower[c] for c in TEXT_COLUMNS if c in lower and lower[c] != label),
                    next((c for c in columns if c != label and c not in media and isinstance(rows[0].get(c), str)), None))
        if text is None and "image" in media.values():
            image = next(c for c, kind in media.items() if kind == "image")
            facts.answers.update(task="classification", labeled_examples=n, image_column=image, label_column=label)
            counts = Counter(str(row.get(label)) for row in rows)
            facts.said.append(f"{n:,} labeled images in {len(counts)} classes (image `{image}`, label `{label}`): task classification "
                              "(an image classifier), labeled_examples")
            return facts
        if text is None:
            raise InputError(f"{where}: a label column `{label}` but no text column (columns: {', '.join(columns[:12])})")
        counts = Counter(str(row.get(label)) for row in rows)
        share = max(counts.values()) / n
        facts.answers.update(task="classification", labeled_examples=n, text_column=text, label_column=label)
        facts.said.append(f"{n:,} labeled examples in {len(counts)} classes (text `{text}`, label `{label}`): task classification, "
                          f"labeled_examples; largest class {share:.0%}" + (", imbalanced: report macro-F1, not accuracy alone"
                                                                          if share > 2 / (len(counts) + 1) and len(counts) > 2 else ""))
        texts = texts_of(text)
        model = model or "sentence-transformers/all-MiniLM-L6-v2"  # the recipe's default classifier
    elif len(columns) == 1 or (text := next((lower[c] for c in TEXT_COLUMNS if c in lower), None)) is not None:
        column = columns[0] if len(columns) == 1 else text
        lengths, how = _lengths(texts_of(column), model)
        facts.answers["unlabeled_corpus_tokens"] = sum(lengths)
        facts.said.append(f"unlabeled text (column `{column}`, no label or output column): unlabeled_corpus_tokens = "
                          f"{sum(lengths):,} ({how})")
        facts.answers["raw_text_data"] = facts.answers.pop("train_data")  # a corpus is not supervised training data
        return facts
    else:
        raise RowsUnclear([c for c in columns if c not in media],  # the image or audio column is known: the rest is asked
                          f"{where}: cannot tell what the rows are (columns: {', '.join(columns[:12])}): expected a label column "
                          "(label, category, ...), prompt/response, messages, chosen/rejected, or one text column; or name yours "
                          "(--set text_column=... label_column=..., or prompt_column/response_column, or chosen_column/rejected_column)")
    return _lengths_said(facts, texts, model, n)


def _media_facts(facts: DataFacts, media: dict[str, str], lower: dict[str, str], n: int, read: str) -> str | None:
    """The modality of rows with images or audio. Speech with transcripts and image+caption pairs are settled here (the
    transcript or caption column returned, for token lengths); rows of images with questions, answers, messages or
    labels only get the modality and are read on as text rows are."""
    kinds = set(media.values())
    where = ", ".join(f"`{c}`" for c in media) + (f"; {read}" if read else "")
    others = {name: column for name, column in lower.items() if column not in media}
    if "audio" in kinds:
        transcript = next((others[c] for c in TRANSCRIPT_COLUMNS if c in others), None)
        facts.answers["modality"] = "speech_to_text"
        if transcript is None:
            facts.said.append(f"{n:,} audio clips ({where}) without a transcript column: modality speech_to_text")
            return None
        audio = next(c for c, kind in media.items() if kind == "audio")
        facts.answers.update(task="generation", labeled_examples=n, audio_column=audio, text_column=transcript)
        facts.said.append(f"{n:,} audio clips with transcripts ({where}, text `{transcript}`): modality speech_to_text, "
                          "task generation (transcription), labeled_examples")
        return transcript
    asks = any(c in others for c in ("question", "answer", "response", "messages", "conversations", *LABEL_COLUMNS))
    caption = next((others[c] for c in CAPTION_COLUMNS if c in others), None)
    if caption is not None and not asks:
        facts.answers.update(modality="text_to_image", task="generation", labeled_examples=n, text_column=caption,
                             image_column=next(c for c, kind in media.items() if kind == "image"))
        facts.said.append(f"{n:,} images with captions ({where}, caption `{caption}`): modality text_to_image (a generator learns "
                          "to draw the caption), task generation, labeled_examples; for captioning (image -> caption) set "
                          "modality=image_text_to_text")
        return caption
    facts.answers["modality"] = "image_text_to_text"
    facts.answers["image_column"] = next(c for c, kind in media.items() if kind == "image")
    facts.said.append(f"images in the rows ({where}): modality image_text_to_text")
    return None


def _lengths_said(facts: DataFacts, texts: list[str], model: str | None, n: int) -> DataFacts:
    lengths, how = _lengths(texts, model)
    p50, p95 = _percentile(lengths, 0.5), _percentile(lengths, 0.95)
    facts.answers["data_p95_tokens"] = p95
    share, held = held_out(n) if n >= 10 else (0, 0)
    facts.said.append(f"length per example: p50 {p50:,} / p95 {p95:,} tokens ({how}); the emitted recipe's max_length covers p95")
    facts.said.append(f"split: {n - held:,} train / {held:,} eval (eval_fraction {share:g}), unless an eval file is given"
                      if held else f"split: all {n} rows train (too few to hold any out): give an eval file")
    return facts


def _is_json_object(value) -> bool:
    if not isinstance(value, str) or not value.strip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(value), dict)
    except ValueError:
        return False


def fill_answers(answers: dict, data_file: str, keep: set | frozenset = frozenset(), named: set | frozenset | None = None) -> list[str]:
    """Fill, in place, the answers a data file proves; it replaces what an answers file said, never an answer in
    `keep` (given on the command line, or as a keyword). The column answers in `named` (default: those in `keep`) say
    which of the file's columns to read as what. Returns what came from which columns."""
    named = keep if named is None else named
    facts = infer(data_file, answers.get("model"), {key: answers[key] for key in NAMED if key in named and answers.get(key)})
    taken = {key: value for key, value in facts.answers.items() if key not in keep or answers.get(key) in (None, "")}
    replaced = sorted(key for key, value in taken.items() if answers.get(key) not in (None, "") and answers[key] != value)
    said = [f"from {data_file}: {line}" for line in facts.said]
    said += [f"from {data_file}: {key} = {taken[key]} (the answers said {answers[key]})" for key in replaced]
    kept = sorted(key for key in set(facts.answers) - set(taken) if answers.get(key) != facts.answers[key])
    answers.update(taken)
    if kept:
        said.append(f"from {data_file}: kept your own {', '.join(kept)}")
    return said
