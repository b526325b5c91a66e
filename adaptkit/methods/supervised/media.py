"""What the image and speech tasks share: the folder a row's file is read from, and files inline as data URLs.
Torch-free."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from adaptkit.errors import InputError

KINDS = {"image": ("an image", "png"), "audio": ("a clip", "wav")}  # kind -> (a row's file, in words; its data URL's default type)


def files_folder(reference: str) -> Path:
    """The folder a data reference's relative image and audio paths are read from: a folder itself (class subfolders,
    or files beside a metadata file), a data file's own folder (as datasets' imagefolder and audiofolder read them)."""
    path = Path(reference).expanduser().resolve()
    return path if path.is_dir() else path.parent


def split_folder(d, where: str) -> Path:
    """The folder a split's relative file paths are read from (files_folder), else the working folder."""
    reference = d.eval if where == "data.eval" and d.eval else d.train
    if reference and Path(reference).expanduser().exists():
        return files_folder(reference)
    return Path.cwd()


def decode(url: str, where: str, kind: str) -> bytes:
    """A base64 data URL's bytes, or one line saying why it is not one."""
    head, _, payload = url.partition(",")
    if ";base64" not in head:
        raise InputError(f"{where}: an {kind} data URL must be base64 (data:{kind}/{KINDS[kind][1]};base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: the {kind} data URL is not valid base64") from None


def locate(value, base: Path, where: str, kind: str) -> str:
    """A row's file as an absolute path (a relative one is read from `base`) or a data URL; a `datasets` value
    ({bytes, path}) becomes one of the two."""
    if isinstance(value, dict):  # datasets' Image or Audio feature, undecoded
        if value.get("bytes"):
            return f"data:{kind}/{KINDS[kind][1]};base64," + base64.b64encode(value["bytes"]).decode()
        value = value.get("path")
    if not isinstance(value, str) or not value.strip():
        thing = KINDS[kind][0]
        raise InputError(f"{where}: no {kind} ({thing} is a file path or a data:{kind}/...;base64 URL)")
    value = value.strip()
    if value.startswith(f"data:{kind}/"):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())
