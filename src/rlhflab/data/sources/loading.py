"""Loading a source: rows from a local file or the Hugging Face hub, through the adapter named in
the registry, into records (prompt records deduplicated)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable, Iterable

from rlhflab.data.records import PromptRecord, SFTRecord
from rlhflab.data.sources.common import Adapter, Row, SourceError
from rlhflab.data.sources.registry import ADAPTERS


def read_rows(path: str | Path) -> list[Row]:
    """Rows of a local file in a source's schema: JSONL, a JSON list, or parquet."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if path.suffix == ".parquet":
        import datasets

        return list(datasets.load_dataset("parquet", data_files=str(path), split="train"))
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        rows = json.loads(text)
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise SourceError(f"{path} line {lineno}: not valid JSON ({e.msg})") from None
    if not rows:
        raise SourceError(f"{path}: the file holds no rows")
    return rows


def hub_rows(adapter: Adapter, split: str) -> list[Row]:
    """Rows of the adapter's hub dataset (needs a network or the HF datasets cache)."""
    import datasets

    repo, config, splits = adapter.hub
    if split not in splits:
        raise SourceError(f"source {adapter.name!r} has no split {split!r}; choose from {sorted(splits)}")
    try:
        return list(datasets.load_dataset(repo, config, split=splits[split]))
    except Exception as e:  # offline, gated, renamed: say what to do instead
        raise SourceError(f"source {adapter.name!r}: could not load {repo} ({config or 'default'}, split "
                          f"{splits[split]}) from the hub: {type(e).__name__}: {e}. Without a network, "
                          "download the rows once and point `path:` at the local file") from None


def load_source(name: str, kind: str, split: str = "train", path: str | Path | None = None,
                limit: int | None = None, seed: int = 0, keep: Callable | None = None) -> list:
    """Records of `kind` from source `name` (rows from `path` when given, else from the hub); with
    `keep`, only the records it accepts, filtered before the seeded `limit` sample (may be empty)."""
    if name not in ADAPTERS:
        raise SourceError(f"unknown source {name!r}; known sources: {', '.join(sorted(ADAPTERS))}")
    adapter = ADAPTERS[name]
    if kind not in adapter.kinds:
        raise SourceError(f"source {name!r} gives {' / '.join(adapter.kinds)} records, not {kind}")
    rows = read_rows(path) if path is not None else hub_rows(adapter, split)
    where = str(path) if path is not None else f"{adapter.hub[0]}:{split}"
    rng = random.Random(seed)
    schema = adapter.hub[0] + (f" ({adapter.hub[1]})" if adapter.hub[1] else "")
    records = []
    # Row by row, so a bad row is named; grouped sources convert all rows at once.
    for i, batch in ([(None, rows)] if adapter.grouped else enumerate(([r] for r in rows), start=1)):
        try:
            records.extend(adapter.convert(batch, kind, rng))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            detail = f"missing field {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            at = f"{where} row {i}" if i is not None else where
            raise SourceError(f"{at}: {detail}; source {name!r} expects rows in the schema of {schema}") from None
    if kind == "prompt":
        records = as_prompts(records)
    if not records:
        raise SourceError(f"{where}: no {kind} records after conversion (every row was filtered out)")
    if keep is not None:
        records = [r for r in records if keep(r)]
    if limit is not None and len(records) > limit:
        records = random.Random(seed).sample(records, limit)
    return records


def as_prompts(records: Iterable) -> list[PromptRecord]:
    """Prompt records from SFT (completion as reference) or preference records (deduplicated)."""
    out, seen = [], set()
    for r in records:
        key = json.dumps([r.prompt, r.meta.get("messages")])
        if key in seen:
            continue
        seen.add(key)
        if isinstance(r, PromptRecord):
            out.append(r)
        elif isinstance(r, SFTRecord):
            out.append(PromptRecord(r.prompt, r.completion, r.id, dict(r.meta)))
        else:
            out.append(PromptRecord(r.prompt, None, r.id, dict(r.meta)))
    return out
