"""Speech recognition, a task of the supervised methods (full fine-tuning, LoRA): rows of an audio clip and its
transcript, checked before any weights load (a missing or unreadable clip, a sample rate other than the model's, a
clip longer than its window: one line each). The trainer (a Whisper-style AutoModelForSpeechSeq2Seq with its
processor) is the family's runner's; transcription is runners.predict's.

Torch-free: WAV is read with the standard library, other formats with soundfile where it is installed.
"""

from __future__ import annotations

import io
import json
import wave
from dataclasses import dataclass
from pathlib import Path

from adaptkit.errors import InputError, one_line
from adaptkit.methods.supervised.media import decode, locate, split_folder

DATA_URL = "data:audio/"
WHISPER = {"sampling_rate": 16_000, "chunk_length": 30}  # Whisper's feature extractor: 16 kHz, a 30 s window


@dataclass(frozen=True)
class Window:
    """What the model's feature extractor takes: its sample rate and the longest clip (seconds) it reads whole."""

    rate: int
    seconds: float


def window_of(model: str) -> Window:
    """The sample rate and window of a model's feature extractor, read from its preprocessor_config.json when the model
    is on disk (Whisper's 16 kHz and 30 s otherwise)."""
    from adaptkit.models import resolve_model

    folder = Path(resolve_model(model))
    config = dict(WHISPER)
    for name in ("preprocessor_config.json", "processor_config.json"):  # the second holds it under feature_extractor
        try:
            found = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found = found.get("feature_extractor", found) if isinstance(found, dict) else {}
        config.update({k: v for k, v in found.items() if k in WHISPER})
        break
    return Window(int(config["sampling_rate"]), float(config["chunk_length"]))


def _source(reference: str, where: str):
    return io.BytesIO(decode(reference, where, "audio")) if reference.startswith(DATA_URL) else reference


def read_audio(reference: str, where: str = "audio"):
    """(mono float32 samples in [-1, 1], sample rate) of a clip, or one line saying why it cannot be read."""
    import numpy as np

    source = _source(reference, where)
    try:
        with wave.open(source, "rb") as clip:
            width, channels, rate = clip.getsampwidth(), clip.getnchannels(), clip.getframerate()
            frames = clip.readframes(clip.getnframes())
    except FileNotFoundError:
        raise InputError(f"{where}: no such audio file {reference}") from None
    except (wave.Error, EOFError, OSError) as exc:
        return _other_format(reference, source, where, exc)
    if width not in (1, 2, 4):
        raise InputError(f"{where}: {_short(reference)} is {8 * width}-bit PCM: save it as 16-bit WAV")
    kind = {1: np.uint8, 2: np.int16, 4: np.int32}[width]
    samples = np.frombuffer(frames, dtype=kind).astype(np.float32)
    samples = (samples - 128) / 128 if width == 1 else samples / float(2 ** (8 * width - 1))
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


def _other_format(reference: str, source, where: str, first: Exception):
    """FLAC, OGG, MP3 ... through soundfile (libsndfile), where it is installed."""
    try:
        import soundfile
    except ImportError:
        raise InputError(f"{where}: cannot read {_short(reference)} as WAV ({one_line(first)[:60]}): save it as 16-bit WAV, or "
                         "pip install soundfile for FLAC/OGG/MP3") from None
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile's own error type
        raise InputError(f"{where}: cannot read the audio {_short(reference)} ({one_line(exc)[:80]})") from None
    return samples.mean(axis=1), rate


def _short(reference: str) -> str:
    return "the clip in a data URL" if reference.startswith(DATA_URL) else reference


def resolve(value, base: Path, where: str) -> str:
    """A row's clip as an absolute path (relative ones are read from the data file's folder) or a data URL."""
    return locate(value, base, where, "audio")


def check_clip(reference: str, window: Window, where: str):
    """The clip's samples, after checking it reads, at the model's sample rate, within its window."""
    samples, rate = read_audio(reference, where)
    if rate != window.rate:
        raise InputError(f"{where}: {_short(reference)} is sampled at {rate:,} Hz; the model reads {window.rate:,} Hz: resample it "
                         f"first (ffmpeg -i IN -ar {window.rate} OUT.wav)")
    seconds = len(samples) / rate
    if seconds > window.seconds:
        raise InputError(f"{where}: {_short(reference)} lasts {seconds:.1f} s, longer than the model's {window.seconds:g} s window: "
                         "cut it into shorter clips with their own transcripts")
    if seconds == 0:
        raise InputError(f"{where}: {_short(reference)} holds no samples")
    return samples


def load(train: list[dict], eval_rows: list[dict], recipe, eval_source: str):
    """Clips and transcripts, checked before any weights load."""
    from adaptkit.runners.data import Splits, check_text, nonempty_splits, require_columns

    d = recipe.data
    window = window_of(recipe.model)
    seconds = []
    for rows, where in nonempty_splits(train, eval_rows):
        require_columns(rows, where, {"data.audio_column": d.audio_column, "data.text_column": d.text_column})
        check_text(rows, d.text_column, where)
        base = split_folder(d, where)
        missing = []
        for number, row in enumerate(rows, 1):
            row[d.audio_column] = reference = resolve(row[d.audio_column], base, f"{where}: row {number}")
            if not reference.startswith(DATA_URL) and not Path(reference).is_file():
                missing.append((number, reference))
                continue
            seconds.append(len(check_clip(reference, window, f"{where}: row {number}")) / window.rate)
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise InputError(f"{where}: row {missing[0][0]}: no such audio file {missing[0][1]}{more} (paths are read relative to "
                             "the data file)")
    return Splits(train, eval_rows, [], eval_source, kind="speech", clip_seconds=seconds)


def summary(recipe, splits, counts: dict) -> dict:
    """The dry run's data part: a sample, the clips' lengths, the model's sample rate and window."""
    d = recipe.data
    first = splits.train[0]
    counts["sample"] = {"audio": _short(first[d.audio_column]), "text": first[d.text_column]}
    if splits.clip_seconds:
        window = window_of(recipe.model)
        counts["audio"] = {"clips": len(splits.clip_seconds), "seconds": [round(min(splits.clip_seconds), 2), round(max(splits.clip_seconds), 2)],
                           "total_minutes": round(sum(splits.clip_seconds) / 60, 2), "sample_rate": window.rate, "window_s": window.seconds}
    return counts
