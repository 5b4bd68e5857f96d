"""Record schemas shared by synthetic and real data, and JSONL I/O with line-numbered errors.

Three kinds of record, one JSON object per line:
- SFT:        {"prompt", "completion", "id"?, "meta"?}
- preference: {"prompt", "chosen", "rejected", "id"?, "meta"?}
- prompt:     {"prompt", "reference"?, "id"?, "meta"?}   (policy-training and test inputs)
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, TypeVar


class RecordError(ValueError):
    """A data file has a bad record; the message names file, line and fix."""


@dataclass
class SFTRecord:
    prompt: str
    completion: str
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreferenceRecord:
    prompt: str
    chosen: str
    rejected: str
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PromptRecord:
    prompt: str
    reference: str | None = None
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


R = TypeVar("R", SFTRecord, PreferenceRecord, PromptRecord)
RECORD_TYPES = {"sft": SFTRecord, "preference": PreferenceRecord, "prompt": PromptRecord}  # by layout kind

_REQUIRED = {
    SFTRecord: ("prompt", "completion"),
    PreferenceRecord: ("prompt", "chosen", "rejected"),
    PromptRecord: ("prompt",),
}
_KIND = {SFTRecord: "SFT", PreferenceRecord: "preference", PromptRecord: "prompt"}


def _validate(obj: Any, cls: type[R], where: str) -> R:
    kind = _KIND[cls]
    required = _REQUIRED[cls]
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(obj).__name__}; "
                          f"each line of a {kind} file is one object with keys {', '.join(required)}")
    allowed = {f for f in cls.__dataclass_fields__}
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {unknown}; a {kind} record has "
                          f"{sorted(allowed)} (put anything else under \"meta\")")
    for key in required:
        if key not in obj:
            raise RecordError(f"{where}: missing field {key!r}; every {kind} record needs "
                              f"{', '.join(required)}")
        if not isinstance(obj[key], str):
            raise RecordError(f"{where}: field {key!r} must be a string, got "
                              f"{type(obj[key]).__name__}")
        if key != "prompt" and not obj[key].strip():
            raise RecordError(f"{where}: field {key!r} is empty; drop the record or fill it in")
    if cls is PreferenceRecord and obj["chosen"] == obj["rejected"]:
        raise RecordError(f"{where}: 'chosen' and 'rejected' are identical, so the pair carries "
                          "no preference; drop the record")
    if "meta" in obj and not isinstance(obj["meta"], dict):
        raise RecordError(f"{where}: field 'meta' must be an object")
    if "id" in obj and not isinstance(obj["id"], str):
        raise RecordError(f"{where}: field 'id' must be a string")
    return cls(**obj)


def _lines(path: Path):
    """(line number, text) of a UTF-8 file (a leading BOM is accepted); bytes that are not UTF-8
    raise a RecordError naming the line and column."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise RecordError(f"{path} line {lineno}: {len(raw) / (1 << 20):.1f} MB in one record; records over "
                              f"{MAX_LINE_BYTES >> 20} MB are refused (shorten it, or split the text)")
        try:
            yield lineno, raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordError(f"{path} line {lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                              f"{e.start + 1}); save the file as UTF-8") from None


MAX_LINE_BYTES = 4 << 20  # longer records are refused: a model's context truncates them anyway


def json_lines(path: str | Path):
    """(line number, "<path> line <n>", object) for every non-empty line of a JSONL file; a missing
    file, a directory, a broken link or a line that is not JSON raise RecordError naming it."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise RecordError(f"{path}: a symbolic link to nothing (broken or looping); point it at a JSONL file")
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    if path.is_dir():
        raise RecordError(f"{path}: is a directory; give a JSONL file of records")
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path} line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise RecordError(f"{where}: not valid JSON: {e.msg} (column {e.colno})") from None
        yield lineno, where, obj


def read_records(path: str | Path, cls: type[R]) -> list[R]:
    path = Path(path)
    out: list[R] = []
    for lineno, where, obj in json_lines(path):
        rec = _validate(obj, cls, where)
        if not rec.id:
            rec.id = f"{path.stem}-{lineno}"
        out.append(rec)
    if not out:
        raise RecordError(f"{path}: the file holds no records")
    return out


def _atomic_write(path: str | Path, write) -> None:
    """Call write(file) on a temp file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    """Write rows (dataclasses or dicts) as JSONL, atomically."""
    def write(f):
        for row in rows:
            obj = asdict(row) if hasattr(row, "__dataclass_fields__") else row
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
    _atomic_write(path, write)


def write_json(path: str | Path, obj: Any) -> None:
    """Write one JSON document atomically."""
    def write(f):
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")
    _atomic_write(path, write)


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    _atomic_write(path, lambda f: f.write(text))


def read_json(path: str | Path) -> Any:
    with Path(path).open(encoding="utf-8") as f:
        return json.load(f)


def flatten(d: dict, sep: str = ".", prefix: str = "") -> dict:
    """A nested dict's leaves under their joined keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, sep, key))
        else:
            out[key] = v
    return out
