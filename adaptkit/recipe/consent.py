"""What a recipe may execute besides adaptkit's own code: nothing, unless the user allows it.

A recipe can name Python functions (tools.custom, prompts.scorer, scoring.scorer). Importing one runs its module's code, so it
needs the user's consent: `adaptkit run --allow-code`, or `allow_code: true` written in the recipe, which
`--dry-run` and `recipes validate` report. `trust_remote_code: true` (the model's own code) is reported too.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from adaptkit.errors import InputError
from adaptkit.recipe.schema import Recipe


def code_refs(recipe: Recipe) -> list[str]:
    """The recipe settings that import Python code, as `setting `ref`` strings (the method's definition knows them)."""
    scorer = recipe.scoring.scorer
    own = [f"scoring.scorer `{scorer}`"] if scorer and ":" in scorer else []
    if scorer == "code":
        from adaptkit.methods.scorers import sandbox

        box = ("in its own namespaces: no network, nothing writable but a temp folder" if sandbox() else
               "with an empty environment and limits, but no network or filesystem box on this machine")
        own.append(f"scoring.scorer `code` (runs the code the model generates, {box})")
    return list(recipe.definition.code(recipe)) + own


def check_consent(recipe: Recipe, allowed: bool) -> None:
    refs = code_refs(recipe)
    if refs and not allowed:
        raise InputError(f"this recipe imports and runs Python code ({', '.join(refs)}): if you trust it, pass --allow-code "
                         "(or set allow_code: true in the recipe)")


def describe_code(recipe: Recipe, allowed: bool) -> list[str]:
    """Lines for --dry-run, `recipes validate` and the start of a run: what code this recipe would execute."""
    lines = []
    refs = code_refs(recipe)
    if refs:
        how = ("allowed by allow_code: true in the recipe" if recipe.allow_code else "allowed by --allow-code") if allowed \
            else "not allowed: running it needs --allow-code or allow_code: true"
        lines.append(f"this recipe imports and runs Python code: {', '.join(refs)} ({how})")
    if recipe.trust_remote_code:
        lines.append(f"trust_remote_code: true: Python code shipped with the model {recipe.model} runs on this machine")
    return lines


def import_function(ref: str, setting: str):
    """The function `ref` names: `package.module:function`, or `path/to/file.py:function`. Only call it with consent."""
    target, sep, name = ref.rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise InputError(f"{setting}: `{ref}` is not module:function or path/to/file.py:function")
    try:
        if target.endswith(".py"):
            path = Path(target).expanduser()
            if not path.is_file():
                raise InputError(f"{setting}: no such file {path}")
            spec = importlib.util.spec_from_file_location(f"adaptkit_user.{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except InputError:
        raise
    except Exception as exc:  # the user's module failed to import: name it
        raise InputError(f"{setting}: cannot import `{target}` ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise InputError(f"{setting}: `{target}` has no function `{name}`")
    return function


KEY_HOMES = {  # an API key's usual environment variable -> the hosts its provider serves from
    "OPENAI_API_KEY": ("api.openai.com",), "ANTHROPIC_API_KEY": ("api.anthropic.com",), "MISTRAL_API_KEY": ("api.mistral.ai",),
    "GROQ_API_KEY": ("api.groq.com",), "TOGETHER_API_KEY": ("api.together.xyz", "api.together.ai"),
    "FIREWORKS_API_KEY": ("api.fireworks.ai",), "DEEPSEEK_API_KEY": ("api.deepseek.com",), "OPENROUTER_API_KEY": ("openrouter.ai",),
    "GEMINI_API_KEY": ("generativelanguage.googleapis.com",), "XAI_API_KEY": ("api.x.ai",), "CEREBRAS_API_KEY": ("api.cerebras.ai",),
}
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _host(url: str) -> tuple[str, str]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return parsed.scheme, (parsed.hostname or "").lower()


def key_destination(recipe: Recipe, allowed: bool) -> str | None:
    """Where the key in backend.api_key_env would go, checked: never over plain http beyond this machine; to a host
    other than its provider's own (or under a name no provider uses) only with consent: --send-key, or the recipe's
    backend.allow_key_to naming that host (which --dry-run shows). Returns a line for --dry-run, or None."""
    block = recipe.backend
    name = block.api_key_env or ("OPENAI_API_KEY" if recipe.adapter == "vendor" else None)  # a vendor job's default key
    if block.kind != "openai" or not name or not block.base_url:
        return None
    scheme, host = _host(block.base_url)
    if scheme == "http" and host not in LOOPBACK:
        raise InputError(f"backend.base_url {block.base_url[:80]} is plain http: the key in {name} would cross the network "
                         "unencrypted; use https (http only to this machine)")
    if host in LOOPBACK or host in KEY_HOMES.get(name, ()):
        return f"the key in {name} goes to {host} only"
    consented = allowed or (block.allow_key_to or "").lower() == host
    if not consented:
        home = KEY_HOMES.get(name)
        why = f"{name} is {home[0]}'s key" if home else f"{name} is not a provider's usual key name"
        raise InputError(f"this recipe would send the key in {name} to {host} ({why}): if that is where it belongs, pass "
                         f"--send-key or set backend.allow_key_to: {host}")
    return f"the key in {name} goes to {host} (" + ("allowed by --send-key)" if allowed else "allowed by backend.allow_key_to)")

