"""Reading configs: YAML files or built-in names, `--set` overrides, errors that name the key."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rlhflab.config.base import ConfigError
from rlhflab.config.experiment import ExperimentConfig

def builtin_path(name: str) -> Path:
    return Path(str(resources.files("rlhflab") / "configs" / f"{name}.yaml"))


# every YAML file in rlhflab/configs, so a new built-in is listed wherever the names are shown
BUILTIN = tuple(sorted(p.stem for p in builtin_path("quickstart").parent.glob("*.yaml")))


def _locate(source: str | Path, relative_to: Path | None = None) -> tuple[Path, str]:
    """The YAML file of a config and its identity (`builtin:<name>` or the file's absolute path)."""
    path = Path(source)
    if relative_to is not None and not path.is_absolute() and (relative_to / path).exists():
        path = relative_to / path
    if path.exists():
        if path.is_dir():
            raise ConfigError(f"config {source!r} is a directory; give a YAML file or a built-in name "
                              f"({', '.join(BUILTIN)})")
        return path, str(path.resolve())
    if str(source) in BUILTIN or builtin_path(str(source)).exists():
        return builtin_path(str(source)), f"builtin:{source}"
    raise ConfigError(f"config {source!r}: no such file and no built-in config of that name "
                      f"(built-ins: {', '.join(BUILTIN)})")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error, not a silent overwrite."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1}); give each key once")
            seen.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8-sig"), Loader=_UniqueKeyLoader)  # a BOM is fine
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte at offset {e.start}); save the file as UTF-8") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def _merge(base: Any, over: Any) -> Any:
    """`over` deep-merged onto `base` (mappings merge key by key; anything else replaces). A section
    whose `kind` changes (task: {kind: files} over the quickstart's synthetic task) is replaced
    whole: the other kind's keys are not its own."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    if "kind" in over and "kind" in base and over["kind"] != base["kind"]:
        return over
    return {**base, **{k: _merge(base.get(k), v) if k in base else v for k, v in over.items()}}


def read_config_file(source: str | Path, _seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """A config file's settings with its `extends:` chain resolved, and the file's identity.

    `extends: quickstart` (a built-in name or a path, relative to the extending file) starts from
    that config and applies this file's keys on top. A file without `name:` is named for its file
    stem, never for the config it extends, so a small override file gets a run folder of its own.
    """
    path, origin = _locate(source, Path(_seen[-1]).parent if _seen and not _seen[-1].startswith("builtin:") else None)
    if origin in _seen:
        raise ConfigError(f"{path}: `extends` loops back to itself ({' -> '.join(_seen + (origin,))})")
    data = _read_yaml(path)
    if not origin.startswith("builtin:"):
        _resolve_task_paths(data.get("task"), path.parent)
    base_name = data.pop("extends", None)
    if base_name is not None:
        if not isinstance(base_name, str):
            raise ConfigError(f"{path}: extends: give one config, a built-in name or a YAML path")
        base, _ = read_config_file(base_name, _seen + (origin,))
        data = _merge({k: v for k, v in base.items() if k != "name"}, data)
    if "name" not in data and not origin.startswith("builtin:"):
        data["name"] = re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem).lstrip("-_.") or "experiment"
    return data, origin


# the task keys that name files (files task), and the keys of dataset refs that may (datasets task)
TASK_FILE_KEYS = ("sft_train", "sft_validation", "preference_train", "preference_validation", "policy_prompts",
                  "policy_validation", "pretrain_corpus")


def _resolve_task_paths(task: Any, folder: Path) -> None:
    """Relative data paths of a config file's task, read from the file's folder where the file is
    there (so a config and its data travel together), else left to the working directory."""
    if not isinstance(task, dict):
        return

    def resolved(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute() and (folder / value).exists():
            return str(folder / value)
        return value

    for key in TASK_FILE_KEYS:
        if isinstance(task.get(key), dict):  # a dataset ref: {source, split, path}
            task[key]["path"] = resolved(task[key].get("path"))
        elif key in task:
            task[key] = resolved(task[key])
    for group in ("test_sets", "preference_tests"):
        for ref in (task.get(group) or {}).values():
            if isinstance(ref, dict) and "path" in ref:
                ref["path"] = resolved(ref["path"])


def apply_override(data: dict[str, Any], assignment: str, defaults: dict[str, Any] | None = None) -> None:
    """Apply one `a.b.c=value` override; the value is parsed as YAML (so 3e-5, true, [1, 2] work)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set sft.optim.lr=1e-4")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {assignment!r}: bad key {key!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    node, known = data, defaults or {}
    parts = key.split(".")
    for p in parts[:-1]:
        known = known.get(p) if isinstance(known, dict) else None
        if known is not None and not isinstance(known, dict):
            raise ConfigError(f"--set {key}: {p!r} is a value, not a section")
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {p!r} is a value, not a section")
        node = child
    current = node.get("kind", known.get("kind") if isinstance(known, dict) else None)
    if parts[-1] == "kind" and current is not None and value != current:
        node.clear()  # another kind of section (--set task.kind=files): the old kind's keys are not its own
    node[parts[-1]] = value


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid config"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p in ("synthetic", "files", "datasets")))
        msg = e["msg"].removeprefix("Value error, ")  # rlhflab's own checks say what is wrong themselves
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `rlhflab config show` lists every key)"
        elif "input" in e and e["type"] != "missing" and not isinstance(e["input"], dict):
            msg = f"{msg} (got {e['input']!r})"
        lines.append(f"  {loc}: {msg}" if loc else f"  {msg}")  # cross-section checks name their keys themselves
    return "\n".join(lines)


def _with_defaults(data: Any, defaults: Any) -> Any:
    """Deep-merge `data` over `defaults`, so setting one key of a section (e.g. rm.optim.lr) keeps
    that section's own defaults for the rest rather than the generic ones of its type."""
    if not isinstance(data, dict) or not isinstance(defaults, dict):
        return data
    if "kind" in defaults and data.get("kind", defaults["kind"]) != defaults["kind"]:
        return data  # another variant (e.g. task.kind: files): the defaults are not its own
    out = dict(defaults)
    for k, v in data.items():
        out[k] = _with_defaults(v, defaults.get(k)) if k in defaults else v
    return out


def load_config(source: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML file or built-in config by name, apply `--set` overrides, validate."""
    source = source or "quickstart"
    data, origin = read_config_file(source)
    defaults = ExperimentConfig().model_dump(mode="json")
    defaults["data_seed"] = None  # derived from seed / seeds when the file leaves it unset
    for o in overrides or []:
        apply_override(data, o, defaults)
    data = _with_defaults(data, defaults)
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, str(source))) from None
    cfg._source = origin
    return cfg


def dump_config(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
