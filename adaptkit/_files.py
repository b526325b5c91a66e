"""Write files so that a crash or Ctrl-C never leaves half of one behind, with the permissions the user's umask gives."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from adaptkit.errors import InputError


@lru_cache(maxsize=1)
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain `open(path, "w")` would give a new file: 0666 less the umask."""
    return 0o666 & ~_umask()


def follow_umask(folder: Path) -> None:
    """Give files a library wrote 0600 (safetensors does, whatever the umask) the mode a plain open() would: outputs follow
    the user's umask like any other file. Only files of `folder`, a folder adaptkit made; links are not followed."""
    wanted = file_mode()
    for path in Path(folder).rglob("*"):
        try:
            if path.is_symlink() or not path.is_file():
                continue
            mode = path.stat().st_mode & 0o777
            if mode == 0o600 and wanted != 0o600:
                path.chmod(wanted)
        except OSError:
            continue


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600 files; outputs follow the umask like any other file
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w", **({} if isinstance(text, bytes) else {"encoding": "utf-8"})) as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_tree(path: Path) -> None:
    """Delete a folder adaptkit made, never following a symbolic link out of it (a link is removed, not its target)."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    shutil.rmtree(path)  # rmtree unlinks symbolic links inside; it does not descend into them


def make_parents(path: Path) -> list[Path]:
    """Create the missing folders above `path` (never touching one that exists); return those made, deepest last."""
    made = []
    for folder in reversed(Path(path).parents):
        if not folder.exists():
            try:
                folder.mkdir()
            except OSError as exc:
                remove_made(made)
                raise InputError(f"{path}: cannot create folder {folder} ({exc.strerror or exc.__class__.__name__})") from None
            made.append(folder)
        elif not folder.is_dir():
            remove_made(made)
            raise InputError(f"{path}: {folder} is a file, not a folder")
    return made


def remove_made(made: list[Path]) -> None:
    """Remove folders `make_parents` made, deepest first, while they are still empty (anything put in them stays)."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            return


def write_new(path: str | Path, text: str | bytes, force: bool = False) -> Path:
    """Write `text` to `path` atomically, creating the folders above it; refuse to replace an existing file unless
    `force`. A write that fails leaves neither the file nor the folders it created."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{path} is a folder: give a file name")
    if (path.exists() or path.is_symlink()) and not force:
        raise InputError(f"{path} already exists: choose another name or pass --force to replace it")
    made = make_parents(path)
    try:
        write_atomic(path, text)
    except OSError as exc:
        remove_made(made)
        raise InputError(f"{path}: cannot write it ({exc.strerror or exc.__class__.__name__})") from None
    except BaseException:
        remove_made(made)
        raise
    return path


def sha256_of(path: Path) -> str | None:
    """The sha256 of a local file's bytes (read in blocks); of a data folder, of each of its files' relative path and
    sha256 in order, its own and its subfolders' (a folder of class subfolders; hidden ones left out); None when it is
    neither."""
    import hashlib

    path = Path(path).expanduser()
    if path.is_dir():
        listing = hashlib.sha256()
        shown = [entry for entry in path.iterdir() if not entry.name.startswith(".")]
        inner = [f for d in shown if d.is_dir() for f in d.iterdir() if not f.name.startswith(".")]
        for file in sorted(f for f in shown + inner if f.is_file()):
            listing.update(f"{file.relative_to(path).as_posix()}\0{sha256_of(file)}\n".encode())
        return listing.hexdigest()
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_folder(target: str, what: str) -> Path:
    """`target` as a folder to write anew (absent, or empty): never a link, never over what is there."""
    out = Path(target).expanduser()
    if out.is_symlink():
        raise InputError(f"{target} is a symbolic link: {what} writes a new folder; give its own path")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{target} already exists: {what} writes a new folder; choose another name or remove it")
    return out


@contextlib.contextmanager
def staged_folder(out: Path, tag: str):
    """Yield a folder written beside `out`, renamed into place when the block ends; on any failure it is removed, and
    so are the folders above `out` this made: nothing half-written is left behind."""
    made = make_parents(out)
    staging = out.parent / f".{out.name}.{tag}-{os.getpid()}"
    try:
        staging.mkdir()
        yield staging
        follow_umask(staging)  # safetensors writes 0600 whatever the umask
        if out.exists():
            out.rmdir()  # the empty folder the user made
        os.rename(staging, out)
    except BaseException:
        if staging.exists():
            remove_tree(staging)  # only what this created
        remove_made(made)
        raise
