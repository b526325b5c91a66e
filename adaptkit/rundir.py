"""The folder a run writes: created fresh, resumed, or replaced safely.

A folder adaptkit creates carries a marker file, and `--overwrite` replaces only such a folder. The new run is
written beside the old one (`.NAME.adaptkit-pending`) and swapped in when it finishes, so a run that fails leaves
the previous results as they were. Deleting never follows a symbolic link out of the folder.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from adaptkit import __version__
from adaptkit._files import remove_tree, write_atomic
from adaptkit.errors import InputError

MARKER = ".adaptkit-run"
SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))


def expand(path: str | Path) -> Path:
    """`~` expanded; relative paths stay relative to the working folder."""
    return Path(path).expanduser()


def refuse_finished_run(ref: str, form: str) -> None:
    """One line when a finished run folder is given where a recipe is wanted (an export of a recipe)."""
    given = Path(ref).expanduser()
    if given.is_dir() and (given / "recipe.yaml").is_file() and (given / "metrics.json").is_file():
        raise InputError(f"{ref} is a finished run: --format {form} exports a recipe (this run's is {given / 'recipe.yaml'}); a "
                         "run exports with --format onnx, gguf or vllm")


def pending_dir(final: Path) -> Path:
    """Where a replacement run is written until it finishes."""
    return final.parent / f".{final.name}.adaptkit-pending"


CHECKPOINT_DONE = "trainer_state.json"  # the Trainer writes it last: a checkpoint without it is incomplete


def complete_checkpoints(folder: Path) -> list[Path]:
    """The folder's complete checkpoints, oldest first."""
    found = [p for p in folder.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name) and (p / CHECKPOINT_DONE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def has_checkpoint(folder: Path) -> bool:
    """A complete Trainer checkpoint in the folder or one level down (RLHF's stages)."""
    return folder.is_dir() and any(complete_checkpoints(place) for place in (folder, *(p for p in folder.iterdir() if p.is_dir())))


def set_aside_incomplete(folder: Path) -> list[str]:
    """Rename checkpoints a killed process left half-written (no trainer_state.json, written last) to
    `checkpoint-N.incomplete`, so that --resume takes the newest complete one; nothing is deleted. What was done."""
    said = []
    for path in sorted(folder.glob("checkpoint-*")):
        if re.fullmatch(r"checkpoint-\d+", path.name) and path.is_dir() and not (path / CHECKPOINT_DONE).is_file():
            aside = path.with_name(path.name + ".incomplete")
            if aside.exists():
                remove_tree(aside)  # an earlier set-aside copy of the same step, made by adaptkit
            path.rename(aside)
            said.append(f"{path.name} was not written to the end (no {CHECKPOINT_DONE}): set aside as {aside.name}; "
                        "resuming from the newest complete checkpoint")
    return said


def is_adaptkit_run(folder: Path) -> bool:
    return (folder / MARKER).is_file() and not (folder / MARKER).is_symlink()


def check_location(final: Path, what: str = "output_dir") -> None:
    """Refuse places no run belongs: system folders, below a file, or where folders cannot be made."""
    absolute = Path(os.path.abspath(final))
    for system in SYSTEM_FOLDERS:
        if absolute == system or system in absolute.parents:
            raise InputError(f"{what} {final} is inside {system}, a system folder: choose a folder of your own")
    if final.exists() and not final.is_dir():
        raise InputError(f"{what} {final} is a file: choose a folder")
    existing = absolute
    while not existing.exists() and not existing.is_symlink():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{what} {final} is below {existing}, which is a file: choose a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{what} {final}: cannot create or write in {existing} (permission denied)")


def check_replaceable(final: Path, inputs: list[Path], owner: Path | None = None) -> None:
    """Why `--overwrite` may not replace `final`, as an InputError; returns when it may."""
    where = final.resolve()
    if final.is_symlink():
        raise InputError(f"--overwrite: output_dir {final} is a symbolic link; give the folder itself")
    if where == Path(where.anchor):
        raise InputError(f"--overwrite never replaces the root folder {where}: choose another output_dir")
    if where == Path.home().resolve():
        raise InputError(f"--overwrite never replaces your home folder {where}: choose another output_dir")
    cwd = Path.cwd().resolve()
    if where == cwd or where in cwd.parents:
        raise InputError(f"--overwrite never replaces the working folder or a folder that holds it ({where}): "
                         "choose another output_dir")
    for path in inputs:
        if where == path or where in path.parents:
            raise InputError(f"--overwrite: output_dir {final} holds this recipe's input {path}: choose another output_dir")
    if not is_adaptkit_run(owner or final):
        raise InputError(f"--overwrite replaces only folders adaptkit created; {final} has no {MARKER} marker: "
                         "move or delete it yourself, or choose another output_dir")


def write_marker(folder: Path, recipe_ref: str) -> None:
    if not is_adaptkit_run(folder):
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        write_atomic(folder / MARKER, json.dumps({"created_by": f"adaptkit {__version__}", "created": stamp,
                                                  "recipe": recipe_ref}, indent=2) + "\n")


@dataclass
class RunDir:
    """Where a run writes now (`work`) and where its results end up (`final`)."""

    final: Path
    work: Path
    made: Path | None = None  # the topmost folder this run created, removed if the run fails
    before: frozenset[str] = frozenset()  # names already in `work` when the run began: never removed
    keep: tuple[Path, ...] = ()  # paths inside the old `final` carried into the new one (a RAG index)
    resumed: bool = False

    @property
    def staged(self) -> bool:
        return self.work != self.final

    def commit(self) -> None:
        """Swap a staged run into place; the previous results are deleted only now."""
        if not self.staged:
            return
        for path in self.keep:
            if path.exists() and self.final.resolve() in path.resolve().parents:
                target = self.work / path.resolve().relative_to(self.final.resolve())
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    remove_tree(target)
                os.rename(path, target)
        old = self.final.parent / f".{self.final.name}.adaptkit-old"
        if old.exists() or old.is_symlink():
            remove_tree(old)
        os.rename(self.final, old)
        os.rename(self.work, self.final)
        remove_tree(old)

    def abandon(self) -> None:
        """Remove what this run wrote, and nothing else."""
        if self.resumed:
            return
        if self.made is not None:
            remove_tree(self.made)
            return
        if self.work.is_dir():
            for path in self.work.iterdir():
                if path.name not in self.before:
                    remove_tree(path)


def prepare(final: Path, recipe_ref: str, *, overwrite: bool, resume: bool, inputs: list[Path] = (),
            keep: tuple[Path, ...] = (), owner: Path | None = None) -> RunDir:
    """Check `final` and decide where the run writes; nothing is deleted here."""
    check_location(final)
    pending = pending_dir(final)
    if resume:
        for folder in (pending, final):
            if has_checkpoint(folder):
                write_marker(folder, recipe_ref)
                return RunDir(final, folder, resumed=True, keep=keep)
        raise InputError(f"--resume: no checkpoint in {final} to resume from")
    kept = {p.resolve() for p in keep}
    contents = [p for p in final.iterdir() if p.name != MARKER and p.resolve() not in kept] if final.is_dir() else []
    if not contents:
        made = None
        if not final.exists():
            made = Path(os.path.abspath(final))
            while not made.parent.exists():
                made = made.parent
        before = frozenset(p.name for p in final.iterdir()) if final.is_dir() else frozenset()
        final.mkdir(parents=True, exist_ok=True)
        write_marker(final, recipe_ref)
        return RunDir(final, final, made=made, before=before, keep=keep)
    if not overwrite:
        if not is_adaptkit_run(owner or final):  # --overwrite would refuse it too: say what will work
            raise InputError(f"output_dir {final} is not empty and adaptkit did not create it: set output_dir=NEW_DIR")
        raise InputError(f"output_dir {final} is not empty: pass --overwrite to replace it, --resume to continue, "
                         "or set output_dir=NEW_DIR")
    check_replaceable(final, [Path(p).resolve() for p in inputs], owner)
    if pending.exists() or pending.is_symlink():
        if not is_adaptkit_run(pending):
            raise InputError(f"{pending} is in the way and was not made by adaptkit: move or delete it yourself")
        remove_tree(pending)  # an earlier replacement that never finished
    pending.mkdir()
    write_marker(pending, recipe_ref)
    return RunDir(final, pending, made=pending, keep=keep)
