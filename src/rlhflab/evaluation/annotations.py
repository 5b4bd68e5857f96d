"""What every judge needs around it: `judge_pairs` with seeded per-example position
randomisation (mapped back) and `AnnotationCache`, an on-disk cache of finished judgements, so a
rerun costs nothing and a crash loses nothing finished.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

from rlhflab.evaluation.judges import Judge, Judgement


def swap_order(seed: int, prompt: str, a: str, b: str) -> bool:
    """Whether to show b first: a fair coin seeded per example, stable across runs and machines."""
    h = hashlib.sha256(json.dumps([seed, prompt, a, b]).encode()).digest()
    return bool(h[0] & 1)


class AnnotationCache:
    """Append-only JSONL of finished judgements, keyed by judge identity + shown inputs.

    Each chunk's judgements are appended and fsynced as soon as they exist, so a killed run keeps
    them; a torn last line (killed mid-write) is ignored on load. With `reuse=False` the existing
    entries are not loaded, so every judgement is redone (and appended, so later runs reuse it).
    """

    def __init__(self, path: Path, *, reuse: bool = True):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        if reuse and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.entries[row["key"]] = row["judgement"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    @staticmethod
    def key(identity: dict, prompt: str, first: str, second: str) -> str:
        return hashlib.sha256(json.dumps([identity, prompt, first, second], sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> Judgement | None:
        j = self.entries.get(key)
        return Judgement(**j) if j is not None else None

    def put_many(self, items: list[tuple[str, Judgement]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            for key, j in items:
                self.entries[key] = asdict(j)
                f.write(json.dumps({"key": key, "judgement": asdict(j)}) + "\n")
            f.flush()
            os.fsync(f.fileno())


class JudgeUnavailable(RuntimeError):
    """The judge could not be reached for some pairs; what it answered is cached."""


def judge_pairs(judge: Judge, prompts: Sequence[str], a: Sequence[str], b: Sequence[str], *, seed: int = 0,
                cache: AnnotationCache | None = None, chunk: int = 64,
                progress: Callable[[int, int], None] = lambda i, n: None) -> list[Judgement]:
    """P(a_i better than b_i) for each i, with randomised positions and caching."""
    n = len(prompts)
    swaps = [swap_order(seed, p, x, y) for p, x, y in zip(prompts, a, b)]
    shown = [(y, x) if s else (x, y) for x, y, s in zip(a, b, swaps)]
    ident = judge.identity()
    keys = [AnnotationCache.key(ident, p, f, s) for p, (f, s) in zip(prompts, shown)]
    results: list[Judgement | None] = [cache.get(k) if cache else None for k in keys]
    todo = [i for i in range(n) if results[i] is None]
    for start in range(0, len(todo), chunk):
        idx = todo[start:start + chunk]
        got = judge([prompts[i] for i in idx], [shown[i][0] for i in idx], [shown[i][1] for i in idx])
        for i, j in zip(idx, got):
            results[i] = j
        if cache:
            cache.put_many([(keys[i], j) for i, j in zip(idx, got) if not j.missing])
        lost = [j for j in got if j.missing]
        if lost:  # an outage: stop asking, keep what was answered
            answered = sum(r is not None and not r.missing for r in results)
            raise JudgeUnavailable(
                f"the judge stopped answering ({lost[0].error}, {len(lost)} of the last {len(idx)} pairs); "
                f"{answered} of {n} judgements of this comparison are done"
                + (" and cached; resume with the same command (after the fix it names, if any) to judge only the "
                   "missing ones" if cache else ""))
        progress(min(start + chunk, len(todo)), len(todo))
    out = []
    for j, s in zip(results, swaps):
        pref = j.preference
        if pref is not None and s:
            pref = 1.0 - pref  # the judge saw b first: map back to "a better"
        out.append(Judgement(pref, j.raw, j.error, j.attempts))
    return out
