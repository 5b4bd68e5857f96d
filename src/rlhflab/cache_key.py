"""What a stage's cache key covers, by construction: the config it can read, the code it runs, the
artefacts it reads and the local files it names.

A stage declares the config keys it reads (`reads`); while it runs it sees the config only
through a `ConfigView` that refuses every other key, so its key cannot miss a setting it uses.
The code fingerprint (rlhflab.code_fingerprint) covers its module and every rlhflab module that
module imports, so editing the code (the gold reward, a loss, the sampler) reruns what it affects.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rlhflab.code_fingerprint import code_fingerprint


class ConfigAccessError(AttributeError):
    """A stage read a config key its cache key does not cover."""


def config_value(cfg: Any, key: str) -> Any:
    """The value at a dotted key of the config (`rm.optim.lr`)."""
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_digest(cfg: Any, keys: list[str] | tuple[str, ...]) -> str:
    """Hash of the named config keys: what a stage's output depends on."""
    payload = {k: jsonable(config_value(cfg, k)) for k in sorted(keys)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _covered(path: str, allowed: tuple[str, ...]) -> bool:
    return any(path == a or path.startswith(a + ".") for a in allowed)


class ConfigView:
    """Read-only view of a config that lets through only the keys in `allowed` (and everything
    under them); reading another key raises ConfigAccessError naming it and the fix."""

    def __init__(self, obj: Any, allowed: tuple[str, ...], owner: str, path: str = ""):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_allowed", tuple(allowed))
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        path = f"{self._path}.{name}" if self._path else name
        if _covered(path, self._allowed):
            return getattr(self._obj, name)
        if any(a.startswith(path + ".") for a in self._allowed):
            return ConfigView(getattr(self._obj, name), self._allowed, self._owner, path)
        raise ConfigAccessError(f"stage {self._owner!r} read config key {path!r}, which its cache key does not "
                                f"cover; add {path!r} to the stage's `reads`")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the config is read-only inside stage {self._owner!r}")

    def __repr__(self) -> str:
        return f"ConfigView({self._path or '<root>'}, allowed={list(self._allowed)})"


def _file_stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None  # the stage itself reports a missing file, naming it
    return [st.st_size, st.st_mtime_ns]


def stage_key(name: str, module: str, cfg: Any, reads: tuple[str, ...], upstream_ids: dict[str, str],
              files: list[str]) -> str:
    key = {"stage": name, "code": code_fingerprint(module), "config": config_digest(cfg, reads),
           "inputs": upstream_ids}
    if files:
        key["files"] = {str(f): _file_stamp(Path(f)) for f in files}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
