"""--push-to-hub: checked before any training (a token, the Hub reachable), then the finished folder uploaded with a
model card filled for the Hub. The token comes from the environment or the stored login; it is never printed or
written."""

from __future__ import annotations

import re
from pathlib import Path

from adaptkit.errors import InputError, brief

SKIPPED = ["checkpoint-*", "*.bin", ".*", "mlruns/*", "mlflow.db", "runs/*"]  # resume state, pickles, hidden files, tracker logs


def check_push(repo_id: str) -> str:
    """The token to push with, after checking the repo id, that the Hub is online and that it accepts the token."""
    import os

    if not re.fullmatch(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}", repo_id or ""):
        raise InputError(f"--push-to-hub {repo_id!r}: give OWNER/NAME, e.g. my-org/tickets-lora")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise InputError("--push-to-hub: the Hub is offline here (HF_HUB_OFFLINE is set): unset it, or run without "
                         "--push-to-hub and upload the run folder later")
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if not token:
        raise InputError("--push-to-hub needs a Hub token with write access: set HF_TOKEN, or log in with `hf auth login`")
    try:
        HfApi().whoami(token=token)
    except Exception as exc:  # network, DNS, 401: all mean the push would fail after training
        said = "the token was refused" if "401" in str(exc) else f"the Hub cannot be reached ({brief(exc)})"
        raise InputError(f"--push-to-hub: {said}; nothing was trained") from None
    return token


def hub_card(text: str, folder: str, repo_id: str, license: str) -> str:
    """The run's card for the Hub: a license field, and the load code pointing at the repo, not a local folder."""
    text = text.replace(repr(folder), repr(repo_id)).replace(repr(str(Path(folder).resolve())), repr(repo_id))
    if text.startswith("---\n") and "\nlicense:" not in text.split("\n---", 1)[0]:
        text = f"---\nlicense: {license}\n" + text[4:]
    return text


def push(folder: Path, repo_id: str, token: str, private: bool = True, license: str = "other") -> str:
    """Upload a finished folder (without checkpoints and pickles) to a model repo; return its URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    card = folder / "README.md"
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", ignore_patterns=SKIPPED + ["README.md"],
                          commit_message="adaptkit: upload the trained model")
        if card.is_file():
            text = hub_card(card.read_text(encoding="utf-8"), str(folder), repo_id, license)
            api.create_commit(repo_id, [CommitOperationAdd("README.md", text.encode("utf-8"))], commit_message="adaptkit: model card")
    except Exception as exc:
        raise InputError(f"--push-to-hub {repo_id}: the upload failed ({brief(exc)}); the run is kept in {folder}") from None
    return f"https://huggingface.co/{repo_id}"
