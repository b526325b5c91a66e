"""Image classification, a task of the supervised methods (full fine-tuning, LoRA/IA3): rows of an image and a label,
checked before any weights load (a missing, unreadable or oversized image is one line); the trainer (Transformers'
AutoModelForImageClassification with its own image processor) is the family's runner's, prediction is runners.predict's.

Torch-free: Pillow opens the images when the data is checked.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from adaptkit.errors import InputError, one_line
from adaptkit.methods.supervised.media import decode, locate, split_folder

DATA_URL = "data:image/"


def resolve(value, base: Path, where: str) -> str:
    """A row's image as an absolute path or a data URL: a path is read relative to its data file's folder; a `datasets`
    Image value ({path, bytes}, or the picture a hub dataset decodes) becomes one of the two."""
    if hasattr(value, "save") and hasattr(value, "size"):  # a Pillow image (a hub dataset's Image feature, decoded)
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return locate(value, base, where, "image")


MAX_PIXELS = 25_000_000  # an image larger than this (width x height) is refused before it is decoded (DataConfig's default)


def open_image(reference: str, where: str = "image", max_pixels: int = MAX_PIXELS):
    """A Pillow image in RGB from a path or data URL, or one line saying why it cannot be read. Its size is read from
    the header first: a small file that decodes to a huge picture (a decompression bomb) is refused before decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        source = io.BytesIO(decode(reference, where, "image")) if reference.startswith(DATA_URL) else reference
        with Image.open(source) as image:
            if image.size[0] * image.size[1] > max_pixels:
                raise InputError(f"{where}: the image {_short(reference)} is {image.size[0]} x {image.size[1]} pixels, over "
                                 f"{max_pixels:,}: shrink it first")
            return image.convert("RGB")
    except FileNotFoundError:
        raise InputError(f"{where}: no such image file {reference}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{where}: cannot read the image {_short(reference)} ({one_line(exc)[:80]})") from None


def _short(reference: str) -> str:
    return reference[:40] + "..." if reference.startswith(DATA_URL) else reference


def check_images(rows: list[dict], column: str, base: Path, where: str, max_pixels: int) -> list[tuple[int, int]]:
    """Resolve every row's image in place and check it before any weights load: it exists, Pillow reads its header, and
    it is not larger than max_pixels. Returns each image's (width, height)."""
    from PIL import Image, UnidentifiedImageError

    sizes = []
    missing = []
    for number, row in enumerate(rows, 1):
        here = f"{where}: row {number}"
        reference = resolve(row[column], base, here)
        row[column] = reference
        if not reference.startswith(DATA_URL) and not Path(reference).is_file():
            missing.append((number, reference))
            continue
        try:
            source = io.BytesIO(decode(reference, here, "image")) if reference.startswith(DATA_URL) else reference
            with Image.open(source) as image:  # reads the header only
                size = image.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise InputError(f"{here}: cannot read the image {_short(reference)} ({one_line(exc)[:80]})") from None
        if size[0] * size[1] > max_pixels:
            raise InputError(f"{here}: the image {_short(reference)} is {size[0]} x {size[1]} pixels, over data.max_image_pixels="
                             f"{max_pixels:,}: shrink it first (the processor resizes every image to the model's size anyway)")
        sizes.append(size)
    if missing:
        number, path = missing[0]
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"{where}: row {number}: no such image file {path}{more} (paths are read relative to the data file)")
    return sizes


def _images_with(train: list[dict], eval_rows: list[dict], recipe, column: str, setting: str, check) -> list:
    """Every split's rows hold an image and `column` (its values checked by `check`), and every image reads: their sizes."""
    from adaptkit.runners.data import nonempty_splits, require_columns

    d = recipe.data
    sizes = []
    for rows, where in nonempty_splits(train, eval_rows):
        require_columns(rows, where, {"data.image_column": d.image_column, setting: column})
        check(rows, column, where)
        sizes += check_images(rows, d.image_column, split_folder(d, where), where, d.max_image_pixels)
    return sizes


def load(train: list[dict], eval_rows: list[dict], recipe, eval_source: str):
    """Image rows and labels, checked (the label set as the text classifier's, every image readable) before any weights load."""
    from adaptkit.runners.data import Splits, balance, check_labels, label_set

    d = recipe.data
    sizes = _images_with(train, eval_rows, recipe, d.label_column, "data.label_column", check_labels)
    return Splits(train, eval_rows, label_set(train, eval_rows, d.label_column), eval_source, kind="images",
                  balance=balance(train, d.label_column), image_sizes=sizes)


def image_parts(messages: list, base: Path, where: str) -> list[str]:
    """The images of OpenAI-style chat messages (content parts {"type": "image_url", "image_url": {"url": ...}}, or
    {"type": "image", "image": ...}), each resolved in place to an absolute path or a data URL, in order."""
    found = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict) or part.get("type") not in ("image_url", "image"):
                continue
            value = part.get("image_url", {}).get("url") if part.get("type") == "image_url" and isinstance(part.get("image_url"), dict) \
                else part.get("image_url") or part.get("image")
            reference = resolve(value, base, where)
            if part.get("type") == "image_url":
                part["image_url"] = {"url": reference}
            else:
                part["image"] = reference
            found.append(reference)
    return found


def load_questions(train: list[dict], eval_rows: list[dict], recipe, eval_source: str):
    """Images with questions and answers (image_column with prompt/response columns), or chat messages whose user turns
    hold image parts (messages_column), for a vision-language model: every image found and readable, every text present,
    before any weights load."""
    from adaptkit.runners.data import Splits, check_text, nonempty_splits, require_columns

    d = recipe.data
    sizes = []
    for rows, where in nonempty_splits(train, eval_rows):
        base = split_folder(d, where)
        if d.messages_column:
            require_columns(rows, where, {"data.messages_column": d.messages_column})
            for number, row in enumerate(rows, 1):
                messages = row[d.messages_column]
                if not isinstance(messages, list) or not messages or messages[-1].get("role") != "assistant":
                    raise InputError(f"{where}: row {number}: `{d.messages_column}` must be chat messages ending with the assistant's answer")
                found = image_parts(messages, base, f"{where}: row {number}")
                if not found:
                    raise InputError(f"{where}: row {number}: no image part in the messages ({{\"type\": \"image_url\", \"image_url\": "
                                     "{\"url\": PATH_OR_DATA_URL}})")
                sizes += check_images([{"image": reference} for reference in found], "image", base, f"{where}: row {number}",
                                      d.max_image_pixels)
        else:
            require_columns(rows, where, {"data.image_column": d.image_column})
            for column, setting in ((d.prompt_column, "data.prompt_column"), (d.response_column, "data.response_column")):
                require_columns(rows, where, {setting: column})
                check_text(rows, column, where)
            sizes += check_images(rows, d.image_column, base, where, d.max_image_pixels)
    return Splits(train, eval_rows, [], eval_source, kind="image_questions", image_sizes=sizes)


def load_captions(train: list[dict], eval_rows: list[dict], recipe, eval_source: str):
    """Images and their captions, for a text-to-image model: every image found and readable, every caption present,
    before any weights load."""
    from adaptkit.runners.data import Splits, check_text

    sizes = _images_with(train, eval_rows, recipe, recipe.data.text_column, "data.text_column", check_text)
    return Splits(train, eval_rows, [], eval_source, kind="captions", image_sizes=sizes)


def as_chat(row: dict, d, with_answer: bool = True) -> tuple[list[str], list[dict], str | None]:
    """A vision-language row as (its images, the prompt messages with an {"type": "image"} part where each image goes, the
    answer): what processors' chat templates and TRL's vision data collator read."""
    if d.messages_column:
        messages = row[d.messages_column]
        turns = messages[:-1] if with_answer and messages and messages[-1].get("role") == "assistant" else messages
        images, prompt = [], []
        for turn in turns:
            content = turn.get("content")
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else []
            for part in content if isinstance(content, list) else []:
                if part.get("type") in ("image_url", "image"):
                    images.append(part["image_url"]["url"] if part.get("type") == "image_url" else part["image"])
                    parts.append({"type": "image"})
                elif part.get("type") == "text":
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
            prompt.append({"role": turn.get("role"), "content": parts})
        answer = messages[-1].get("content") if with_answer and messages and messages[-1].get("role") == "assistant" else None
        return images, prompt, (answer if isinstance(answer, str) or answer is None else " ".join(
            str(p.get("text", "")) for p in answer if isinstance(p, dict)))
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": str(row[d.prompt_column])}]}]
    return [row[d.image_column]], prompt, row.get(d.response_column) if with_answer else None


def summary(recipe, splits, counts: dict) -> dict:
    """The dry run's data part: labels, a sample, the images' sizes and what the processor resizes them to."""
    from adaptkit.runners.data import label_counts

    d = recipe.data
    first = splits.train[0]
    if splits.kind == "captions":
        counts["sample"] = {"image": _short(first[d.image_column]), "caption": first[d.text_column]}
    elif splits.kind == "image_questions":
        counts["sample"] = ({"messages": first[d.messages_column]} if d.messages_column else
                            {"image": _short(first[d.image_column]), "prompt": first[d.prompt_column], "response": first[d.response_column]})
    else:
        labels = lambda rows: {str(k): v for k, v in sorted(label_counts(rows, d.label_column).items(), key=lambda kv: str(kv[0]))}  # noqa: E731
        counts["labels"] = labels(splits.train)
        if splits.eval:
            counts["eval_labels"] = labels(splits.eval)
        counts["sample"] = {"image": _short(first[d.image_column]), "label": str(first[d.label_column])}
    sizes = splits.image_sizes
    if sizes:
        widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
        counts["images"] = {"count": len(sizes), "width": [min(widths), max(widths)], "height": [min(heights), max(heights)]}
    return counts
