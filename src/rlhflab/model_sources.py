"""Every model a config names, checked before any stage runs: a local folder must exist and hold a
Hugging Face model, and a hub name must be reachable (offline: already in the cache). Without this
a wrong name surfaced after minutes of retries, or inside a stage as an unusable output folder.

`model_source_problems(cfg)` lists one line per bad key, each naming the key, what is wrong and
the fix; the CLI prints them all and exits 2, like other config errors.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# a hub id: "name" or "owner/name" (letters, digits, - _ .), as huggingface_hub validates them
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _in_hub_cache(repo_id: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return isinstance(found, str)


def source_problem(key: str, name: str, marker: str = "config.json") -> str | None:
    """Why the model `name` at config key `key` cannot be loaded, or None. `marker`: the file a
    loadable folder holds (sentence-transformers folders hold config.json too)."""
    path = Path(name).expanduser()
    if path.exists():
        if path.is_file():
            return None if path.suffix == ".gguf" else f"{key}: {name} is a file, not a Hugging Face model folder"
        if not (path / marker).exists():
            return f"{key}: {name} has no {marker}, so it is not a Hugging Face model folder (save one with save_pretrained)"
        return None
    if name.startswith(("/", "./", "../", "~")) or not HUB_ID.match(name):
        return f"{key}: no such folder {name} (and it is not a hub name); fix the path"
    if _offline() and not _in_hub_cache(name, marker):
        return (f"{key}: {name!r} is a hub name, HF_HUB_OFFLINE is set and it is not in the hub cache; run once "
                "with a network (unset HF_HUB_OFFLINE), or point the key at a local folder")
    return None


def model_source_problems(cfg) -> list[str]:
    """One line per model key of `cfg` that cannot be loaded (only keys the run will use)."""
    named = [("model.name_or_path", cfg.model.name_or_path)]
    if cfg.eval.enabled and cfg.eval.judge == "local":
        named.append(("eval.local_model", cfg.eval.local_model))
    if cfg.diversity.enabled and "nli" in cfg.diversity.metrics:
        named.append(("diversity.nli_model", cfg.diversity.nli_model))
    if cfg.diversity.enabled and "sentence_bert" in cfg.diversity.metrics:
        named.append(("diversity.sentence_encoder", cfg.diversity.sentence_encoder))
    return [p for key, name in named if name and (p := source_problem(key, str(name))) is not None]
