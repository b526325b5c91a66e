"""Read and check recipe data before any weights load. Light: stdlib readers; datasets only for hub names."""

from __future__ import annotations

import csv
import difflib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from adaptkit.errors import InputError, one_line
from adaptkit.recipe.load import is_file_reference
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.sources import PATH_LIKE, mix, no_such_file


@dataclass
class Splits:
    """Rows ready for a training runner, plus what --dry-run reports about them."""

    train: list[dict]
    eval: list[dict]
    labels: list = field(default_factory=list)  # classification: the label set, in a stable order
    eval_source: str = ""
    kind: str = "instructions"  # classification | images | image_questions | captions | speech | instructions | text (raw, continued pre-training) | pairs | feedback | prompts
    leaked: dict = field(default_factory=dict)  # eval rows whose input is also in train (load_data fills it)
    balance: str = ""  # classification: a warning when the labels are far from balanced
    image_sizes: list = field(default_factory=list)  # image classification: each image's (width, height)
    clip_seconds: list = field(default_factory=list)  # speech recognition: each clip's length
    mix: object = None  # data.sources: a runners.sources.Mix (each source's format, rows and share; each row's source)

    def describe(self) -> str:
        said = f"{len(self.train)} train / {len(self.eval)} eval rows"
        if self.mix is not None:
            said += " from " + ", ".join(f"{Path(s['source']).name} ({s['format']}, {s['share']:.0%})" for s in self.mix.sources)
        if self.balance:
            said += f"; {self.balance}"
        if self.leaked.get("rows"):
            said += (f"; {self.leaked['rows']} eval rows also in train ({self.leaked['exact']} exact, {self.leaked['near']} near "
                     "duplicates): their held-out score would be overstated")
        return said


@dataclass
class Rows:
    """A checked evaluation file for a method that trains nothing: questions (RAG) or tasks (tool use)."""

    rows: list[dict]
    noun: str
    train: list[dict] = field(default_factory=list)  # RAG retriever tuning: its training questions
    leaked: dict = field(default_factory=dict)  # eval rows whose input is also a training row's

    def describe(self) -> str:
        said = f"{len(self.rows)} {self.noun}" + (f", {len(self.train)} training {self.noun}" if self.train else "")
        if self.leaked.get("rows"):
            said += f"; {self.leaked['rows']} eval {self.noun} also in training ({self.leaked['exact']} exact, {self.leaked['near']} near)"
        return said


@dataclass
class PromptData:
    """Prompt engineering and ICL: the demonstration pool, the dev rows scored, and the labels (classification)."""

    pool: list[dict]
    rows: list[dict]
    labels: list[str]

    def describe(self) -> str:
        return f"{len(self.pool)} pool / {len(self.rows)} dev rows" + (f", {len(self.labels)} labels" if self.labels else "")


def read_rows(reference: str, split: str, where: str) -> list[dict]:
    """Rows of a .jsonl/.json/.csv/.tsv/.parquet file or a hub dataset split; a .txt file is raw text, one row per
    paragraph (blank-line separated) in a `text` column."""
    if not is_file_reference(reference):
        if PATH_LIKE.search(reference):
            raise no_such_file(reference, where)
        return _hub_rows(reference, split, where)
    path = Path(reference).expanduser()
    if path.is_dir():
        return folder_rows(path, where)
    if not path.is_file():
        raise InputError(f"{where}: no such file {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        raise InputError(f"{where}: {path} line {number} is not valid JSON") from None
        elif suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8-sig"))
            if isinstance(rows, dict) and len(rows) == 1 and isinstance(next(iter(rows.values())), list):
                rows = next(iter(rows.values()))
        elif suffix in (".csv", ".tsv"):
            with open(path, newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: a BOM is not part of the first column's name
                rows = list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
            for number, row in enumerate(rows, 2):
                if None in row:
                    raise InputError(f"{where}: {path} line {number} has more fields than the header (quote fields that hold commas)")
        elif suffix == ".txt":
            paragraphs = re.split(r"\n\s*\n", path.read_text(encoding="utf-8-sig"))
            rows = [{"text": part.strip()} for part in paragraphs if part.strip()]
        elif suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise InputError(f"{where}: reading parquet needs pyarrow (pip install 'adaptkit[train]')") from None
            rows = pq.read_table(path).to_pylist()
        else:
            raise InputError(f"{where}: {path} is not .jsonl, .json, .csv, .tsv, .parquet or .txt (save it as one of them)")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except (ValueError, csv.Error) as exc:
        raise InputError(f"{where}: {path} cannot be parsed ({one_line(exc)[:120]})") from None
    except OSError as exc:
        raise InputError(f"{where}: cannot read {path} ({exc.strerror or exc.__class__.__name__})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{where}: {path} must hold records (one object per row)")
    return rows


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus", ".aac")
METADATA_FILES = ("metadata.jsonl", "metadata.csv", "metadata.parquet")  # datasets' audiofolder/imagefolder layout
SPLIT_NAMES = ("train", "test", "validation", "valid", "val", "eval", "dev")


def metadata_file(folder: Path) -> Path | None:
    """A media folder's metadata file (datasets' imagefolder/audiofolder layout), where it has one."""
    return next((folder / name for name in METADATA_FILES if (folder / name).is_file()), None)


def folder_rows(folder: Path, where: str) -> list[dict]:
    """A folder of images or audio clips as datasets' imagefolder and audiofolder read it: a metadata file whose
    `file_name` column names each file (read as the `image` or `audio` column, the other columns beside it), else one
    subfolder per class holding its files (`label`: the subfolder's name). File paths stay relative to the folder."""
    metadata = metadata_file(folder)
    if metadata is not None:
        rows = read_rows(str(metadata), "train", where)
        names = [str(row.get("file_name", "")) for row in rows]
        missing = [name for name in names if not name or not (folder / name).is_file()]
        if missing:
            raise InputError(f"{where}: {len(missing)} file(s) named in {metadata.name}'s `file_name` column are not in {folder} "
                             f"(first: {missing[0] or 'an empty name'})")
        audio = sum(name.lower().endswith(AUDIO_SUFFIXES) for name in names) > len(names) / 2
        return [{"audio" if audio else "image": row.pop("file_name"), **row} for row in rows]
    classes = sorted(entry for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    files = {c.name: sorted(f.relative_to(folder).as_posix() for f in c.iterdir()  # a class's own files, not a whole tree
                            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES) for c in classes}
    splits = classes and all(c.name.lower() in SPLIT_NAMES for c in classes) and any(
        any(d.is_dir() for d in c.iterdir()) or metadata_file(c) for c in classes)
    if splits:
        raise InputError(f"{where}: {folder} holds split folders ({', '.join(c.name for c in classes)}): give each split's folder "
                         f"(data.train={folder}/train, data.eval={folder}/test)")
    rows = [{"image" if name.lower().endswith(IMAGE_SUFFIXES) else "audio": name, "label": label}
            for label, names in files.items() for name in names]
    held = [label for label, names in files.items() if names]
    if len(held) == 1:
        raise InputError(f"{where}: {folder} has one subfolder of images or audio ({held[0]}/): a folder of classes needs one "
                         "subfolder per class, two or more")
    if not rows:
        raise InputError(f"{where}: {folder} is a folder without {' or '.join(METADATA_FILES)} and without class subfolders of "
                         f"images or audio: give a data file, or one subfolder per class (cat/, dog/) holding its files")
    return rows


def _hub_rows(name: str, split: str, where: str) -> list[dict]:
    try:
        import datasets
    except ImportError:
        raise InputError(f"{where}: `{name}` is not a local file; hub datasets need `pip install 'adaptkit[train]'`") from None
    try:
        return list(datasets.load_dataset(name, split=split))
    except Exception as exc:  # offline, missing, gated: say which and what to do
        raise InputError(f"{where}: cannot load hub dataset `{name}` split `{split}` ({exc.__class__.__name__}); "
                         "offline, pass a local .jsonl/.csv/.parquet file") from None


def require_columns(rows: list[dict], where: str, wanted: dict[str, str]) -> None:
    """Every row has each setting's column ({setting: column}); the columns the file lacks are named at once, each with
    the setting that names another (a user's own file fixed in one go, not one error at a time)."""
    present = [one_line(key)[:40] for key in rows[0].keys()][:30]
    missing = [(setting, column) for setting, column in wanted.items() if column not in rows[0]]
    if missing:
        hints = []
        for setting, column in missing:
            close = difflib.get_close_matches(column, present, n=1, cutoff=0.5)
            hints.append((column, setting, close[0] if close else None))
        if len(hints) == 1:
            column, setting, close = hints[0]
            hint = f"; did you mean `{close}` (set {setting}={close})" if close else f"; name the one to read with {setting}=COLUMN"
            raise InputError(f"{where}: column `{column}` not found (columns: {', '.join(present)}){hint}")
        names = ", ".join(f"`{column}`" for column, _, _ in hints)
        settings = " ".join(f"{setting}={close or 'COLUMN'}" for _, setting, close in hints)
        raise InputError(f"{where}: columns {names} not found (columns: {', '.join(present)}); name the ones to read: {settings}")
    for column in wanted.values():
        missing_row = next((number for number, row in enumerate(rows, 1) if column not in row), None)
        if missing_row is not None:
            raise InputError(f"{where}: row {missing_row} has no `{column}` (every row needs it)")


def check_labels(rows: list[dict], column: str, where: str) -> None:
    for number, row in enumerate(rows, 1):
        value = row[column]
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InputError(f"{where}: row {number} has an empty label in `{column}`")
        if isinstance(value, float) and not value.is_integer():
            raise InputError(f"{where}: label column `{column}` holds floats ({value}): classification needs string or integer labels")
        if isinstance(value, (list, dict)):
            raise InputError(f"{where}: label column `{column}` holds {type(value).__name__}s: one label per row is needed")


def label_set(train: list[dict], eval_rows: list[dict], column: str) -> list:
    """A classifier's labels in a stable order (integers first, then strings): two or more, and every eval label among them."""
    labels = sorted({label_key(r[column]) for r in train}, key=lambda v: (isinstance(v, str), v))
    if len(labels) < 2:
        raise InputError(f"data.train: only one label ({labels[0]!r}) in `{column}`: classification needs two or more")
    # compared as the training maps them (by text): a CSV's "1" and a JSONL's 1 are one label
    unseen = sorted({str(label_key(r[column])) for r in eval_rows} - {str(label) for label in labels})
    if unseen:
        raise InputError(f"data.eval: labels not in the training data: {', '.join(map(str, unseen[:5]))} "
                         f"(train has: {', '.join(map(str, labels[:8]))})")
    return labels


def check_text(rows: list[dict], column: str, where: str) -> None:
    empty = [n for n, row in enumerate(rows, 1) if not isinstance(row[column], str) or not row[column].strip()]
    if empty:
        raise InputError(f"{where}: {len(empty)} row(s) have no text in `{column}` (first: row {empty[0]})")


def label_key(value):
    """Integers written as 1.0 or '1' in CSV stay one label."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def nonempty_splits(train: list[dict], eval_rows: list[dict]):
    """(rows, where) for each split that has rows, training first: what every data check walks."""
    return [(rows, where) for rows, where in ((train, "data.train"), (eval_rows, "data.eval")) if rows]


def read_splits(recipe: Recipe):
    """(train, eval, where eval came from, the mix): data.eval, a held-out share of the training set, or nothing. The
    training set is data.train, or data.sources mixed (then the mix says each source's part and each row's source;
    else it is None)."""
    d = recipe.data
    mixed = None
    if d.sources:
        mixed = mix(d, recipe.training.seed)
        train, origin = mixed.rows, mixed.origin
    else:
        train = read_rows(d.train, d.train_split, "data.train")
        origin = [0] * len(train)
    if not train:
        raise InputError(f"data.train: {d.train} has no rows")
    eval_rows, eval_source = [], ""
    if d.eval:
        eval_rows = read_rows(d.eval, d.eval_split, "data.eval")
        if not eval_rows:
            raise InputError(f"data.eval: {d.eval} has no rows")
        eval_source = d.eval
    elif d.eval_fraction:
        paired = list(zip(train, origin))
        random.Random(recipe.training.seed).shuffle(paired)
        cut = max(1, round(len(paired) * d.eval_fraction))
        eval_rows, paired = [row for row, _ in paired[:cut]], paired[cut:]
        train, origin = [row for row, _ in paired], [number for _, number in paired]
        eval_source = f"{d.eval_fraction:.0%} of the training set (seed {recipe.training.seed})"
        if not train:
            total = len(eval_rows)
            paragraphs = (f" (a .txt file is one row per paragraph, separated by blank lines, and this one has {total}: put a blank "
                          "line between documents, or give data.eval)"
                          if str(d.training_set).lower().endswith(".txt") else "")
            raise InputError(f"data.train: {d.training_set} has too few rows to hold out {d.eval_fraction:.0%} for evaluation"
                             + paragraphs)
    if d.max_rows and len(train) > d.max_rows:
        # a seeded sample in file order, not the file's first rows: a file sorted by label keeps every label, and a smaller
        # max_rows takes a subset of a larger one's rows (a bake-off's rungs, a learning curve's points)
        picked = sorted(sample_order(train, recipe.training.seed, getattr(d, "label_column", None))[: d.max_rows])
        train, origin = [train[i] for i in picked], [origin[i] for i in picked]
    if mixed:
        mixed.rows, mixed.origin, mixed.sources = [], origin, mixed.report(origin)
    return train, eval_rows, eval_source, mixed


def sample_order(rows: list[dict], seed: int, label: str | None = None) -> list[int]:
    """Row indices in the order a sample takes them (its first n are the sample of n): seeded, and spread over the
    label column's values in proportion where every row has one (systematic sampling per label), so a sample of n
    holds every label whose share of n is a row or more."""
    rng = random.Random(seed)
    if not label or not all(isinstance(row, dict) and label in row for row in rows):
        order = list(range(len(rows)))
        rng.shuffle(order)
        return order
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(str(label_key(row[label])), []).append(index)
    keyed = []
    for name in sorted(groups):
        members = groups[name]
        rng.shuffle(members)
        offset = rng.random()
        keyed += [((position + offset) / len(members), index) for position, index in enumerate(members)]
    return [index for _, index in sorted(keyed)]


def response_text(value) -> str:
    """A response as text: a string, or the contents of a message list."""
    if isinstance(value, list):
        return " ".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return value if isinstance(value, str) else ""


def label_counts(rows: list[dict], column: str) -> Counter:
    return Counter(label_key(r[column]) for r in rows)


IMBALANCE = 10  # most common label over least common at which a classifier's accuracy says little (report macro F1)


def balance(rows: list[dict], column: str) -> str:
    """A warning when the training labels are far from balanced, else ''."""
    counts = label_counts(rows, column).most_common()
    if len(counts) < 2 or counts[0][1] < IMBALANCE * counts[-1][1]:
        return ""
    return (f"labels are imbalanced: {counts[0][0]} has {counts[0][1]} rows, {counts[-1][0]} has {counts[-1][1]}: "
            "accuracy rewards the common label; read f1_macro, or add rows of the rare ones")


def read_eval(recipe: Recipe, what: str) -> list[dict]:
    """data.eval's rows, which must not be empty."""
    rows = read_rows(recipe.data.eval, recipe.data.eval_split, "data.eval")
    if not rows:
        raise InputError(f"data.eval: {recipe.data.eval} has no {what}")
    return rows


def load_data(recipe: Recipe):
    """The recipe's data, read and checked by its method's own loader before any weights load; for training data,
    what of the eval rows is also in train (exact and near duplicates). A share of a training file beside an eval file
    (data.max_rows: a bake-off rung, a tuning trial) is checked against the whole file, as its full run is: the
    near-duplicate test reads the template off the training rows it is given, so a share alone could flag a row the
    whole file does not."""
    from adaptkit.methods.registry import import_ref

    read = import_ref(recipe.definition.data)
    data = read(recipe)
    if isinstance(data, Splits) and data.train and data.eval:
        train = data.train
        if recipe.data.max_rows and recipe.data.eval and not recipe.data.sources:  # a streamed mix is bounded by max_rows
            whole = recipe.model_copy(update={"data": recipe.data.model_copy(update={"max_rows": None})})
            train = read(whole).train
        data.leaked = leaks(recipe, data.kind, train, data.eval)
    return data


NEAR = 0.8  # Jaccard similarity of character 5-gram shingles above which two inputs are near duplicates (MinHash estimate)
NEAR_LIMIT = 200_000  # training rows up to which near duplicates are looked for (MinHash LSH); exact ones always
TEMPLATE_SHARE = 0.2  # a shingle in more of the training rows than this is the data's template, not its content


def leaks(recipe: Recipe, kind: str, train: list[dict], eval_rows: list[dict]) -> dict:
    """Eval rows whose input is also a training row's (`overlap`); media are compared by their bytes, exactly."""
    return overlap([input_text(r, recipe, kind) for r in train], [input_text(r, recipe, kind) for r in eval_rows],
                   near_too=kind not in ("images", "speech", "image_questions", "captions"))


def input_text(row: dict, recipe: Recipe, kind: str) -> str:
    """What identifies a row as an example: its input (a classifier's text, an instruction's prompt or messages)."""
    d = recipe.data
    if kind in ("images", "speech"):  # a picture or a clip is the same example when its bytes are
        return _media_identity(str(row.get(d.image_column if kind == "images" else d.audio_column)))
    if kind == "captions":  # the same picture (whatever its caption)
        return _media_identity(str(row.get(d.image_column)))
    if kind == "image_questions":  # the same picture asked the same question
        if d.messages_column:
            return response_text(row.get(d.messages_column)[:-1]) if isinstance(row.get(d.messages_column), list) else ""
        return _media_identity(str(row.get(d.image_column))) + " " + str(row.get(d.prompt_column))
    column = d.text_column if kind in ("classification", "text") else d.messages_column if d.messages_column and kind == "instructions" \
        else d.prompt_column
    return value_text(row.get(column))


def value_text(value) -> str:
    """A column's value as the text that identifies a row: chat messages' contents, or the value itself."""
    return response_text(value) if isinstance(value, list) else str(value if value is not None else "")


def _media_identity(reference: str) -> str:
    """The sha256 of an image's or a clip's bytes (a data URL's, of the URL: the same bytes encode alike)."""
    import hashlib

    try:
        data = reference.encode() if reference.startswith("data:") else Path(reference).read_bytes()
    except OSError:
        return reference
    return "image " + hashlib.sha256(data).hexdigest()


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def overlap(train: list[str], eval_texts: list[str], near_too: bool = True) -> dict:
    """Eval inputs that are also training inputs: exactly (after lowercasing and dropping punctuation and spacing), or
    nearly (MinHash LSH over character 5-grams, less those most rows share; Jaccard >= NEAR; datasketch). The most common way a fine-tuning result is
    overstated."""
    import hashlib

    key = lambda text: hashlib.sha1(_normal(text).encode()).hexdigest()  # noqa: E731
    seen = {key(text) for text in train}
    exact = [i for i, text in enumerate(eval_texts) if key(text) in seen]
    near: list[int] = []
    method = "normalized hashing" if near_too else "identical bytes (sha256)"
    sketches = _sketches(train) if near_too and len(train) <= NEAR_LIMIT else None
    if sketches is not None:
        method += f" + MinHash LSH (character 5-grams less the template shared by many rows, Jaccard >= {NEAR:g})"
        signatures, signature = sketches
        index = _index(signatures)
        taken = set(exact)
        near = [i for i, text in enumerate(eval_texts) if i not in taken and index.query(signature(text))]
    return {"rows": len(exact) + len(near), "exact": len(exact), "near": len(near), "of": len(eval_texts), "method": method,
            "first": sorted(exact + near)[:5]}


def near_groups(texts: list[str]) -> list[int]:
    """A group number per text: texts equal after normalizing, or near duplicates as `overlap` finds them, share one
    (transitively), so a split that keeps groups whole holds out nothing its training side nearly repeats."""
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, text in enumerate(texts):
        parent[root(i)] = root(first.setdefault(_normal(text), i))
    sketches = _sketches(texts) if len(texts) <= NEAR_LIMIT else None
    if sketches is not None:
        signatures, _ = sketches
        index = _index(signatures)
        for i, sketch in enumerate(signatures):
            for other in index.query(sketch):
                parent[root(int(other))] = root(i)
    return [root(i) for i in range(len(texts))]


def _sketches(train: list[str]):
    """(MinHash signatures of the training texts, a function giving any text's), over character 5-grams less the
    template (5-grams in over TEMPLATE_SHARE of the rows); None without datasketch."""
    try:
        from datasketch import MinHash
    except ImportError:
        return None
    from collections import Counter

    def shingles(text: str) -> set[str]:  # characters, not words: a changed word in a short text still matches
        text = _normal(text)
        return {text[i:i + 5] for i in range(max(1, len(text) - 4))}

    train_sets = [shingles(text) for text in train]
    frequency = Counter(s for found in train_sets for s in found)
    template = {s for s, n in frequency.items() if n > max(5, TEMPLATE_SHARE * len(train))}  # an instruction every row repeats

    def sign(found: set[str]):
        sketch = MinHash(num_perm=64, seed=1)
        sketch.update_batch([s.encode() for s in (found - template) or {""}])
        return sketch

    return [sign(found) for found in train_sets], lambda text: sign(shingles(text))


def _index(signatures: list):
    from datasketch import MinHashLSH

    index = MinHashLSH(threshold=NEAR, num_perm=64)
    for number, sketch in enumerate(signatures):
        index.insert(str(number), sketch)
    return index


def describe_data(recipe: Recipe) -> str:
    """Check a recipe's data the way its runner will, and say what is there."""
    return load_data(recipe).describe()


def eval_identity(recipe: Recipe, data=None) -> dict:
    """What a run was scored on, for compare: the eval file (its sha256 when local), or the slice held out of the
    training file (its share and seed), and how many rows were scored (when the run's data is given)."""
    d = recipe.data
    source = d.eval or d.training_set
    held_out = None if d.eval else d.eval_fraction
    # data.max_rows caps the training rows only; a held-out slice is drawn with the training seed
    identity = {"source": source, "held_out_fraction": held_out, "seed": recipe.training.seed if held_out else None}
    scored = data.eval if isinstance(data, Splits) else getattr(data, "rows", None)
    if isinstance(scored, list) and scored:
        identity["rows"] = len(scored)
    from adaptkit._files import sha256_of

    found = sha256_of(Path(source)) if source else None
    if found:
        identity["sha256"] = found
    return identity


def train_identity(recipe: Recipe, data) -> dict:
    """What a run trained on, for the ledger: its rows, the training file's sha256 (when local), a mix's sources."""
    from adaptkit._files import sha256_of

    identity = {}
    if isinstance(data, Splits) and data.train:
        identity["rows"] = len(data.train)
    train = getattr(recipe.data, "train", None)
    found = sha256_of(Path(train)) if isinstance(train, str) and train else None
    if found:
        identity["sha256"] = found
    if getattr(data, "mix", None) is not None:
        identity["sources"] = data.mix.sources  # each source's format, rows and share of the mix
    return identity


def same_eval(a: dict | None, b: dict | None) -> bool:
    """Whether two runs were scored on the same rows (by content, where both files were hashed)."""
    if not a or not b:
        return False
    key = lambda i: (i.get("sha256") or i.get("source"), i.get("held_out_fraction"), i.get("seed"))  # noqa: E731
    return key(a) == key(b)
