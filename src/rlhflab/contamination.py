"""Test inputs must not appear in the data a model is trained or selected on (kirk2024 appendix J.1:
"train on the ID train set, do model selection using the ID validation set, and evaluate on the ID
and OOD test sets"). Pure functions; the data stage reads the sets, calls `contamination_report`
and stops the run on `violations`.

What counts as one input. A record is compared by its *input*, not by how it is rendered:
- a chat record by its conversation (the contents of `meta.messages`), so the chat template does
  not matter; else its raw input (`meta.input`: the post or article of a summarisation source, so
  the same post under another title or prompt format still matches); else its prompt;
- normalised as: Unicode NFKC, casefold, split on whitespace, punctuation stripped from the ends
  of each word, words joined by one space ("Hello,  World!" == "hello world"; "hello-world" is
  not "hello world"; "TL;DR:" becomes "tl;dr");
- an input that normalises to nothing (an empty prompt) is never counted.

What is compared with what:
- every test set (prompt test sets, and preference test sets by their inputs) against every
  training and validation set of every kind (SFT, preference pairs, policy prompts);
- each ID test set against each OOD test set of the same kind, both ways (an OOD input that is also
  an ID input measures no shift; the gap is measured within a kind);
- the pretraining corpus: its documents are no prompts (a post without the TL;DR cue, or a prompt
  with its completion), so a document matches a test input when the two are equal, when the whole
  document lies inside the input covering at least half of its words, or when the input (at least
  `ANCHOR_WORDS` words) lies inside the document. Shorter texts found inside longer ones are too
  generic to mean the same input.
Duplicates within one set, or between two training sets, are not contamination.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Iterable

ANCHOR_WORDS = 8
MAX_EXAMPLES = 5

Keyed = list[tuple[str, str]]  # (record id, normalised input) of one set


class ContaminationError(ValueError):
    """A test set shares more inputs with another set than the threshold allows."""


_ASCII_PUNCTUATION = "".join(c for c in map(chr, range(128)) if unicodedata.category(c).startswith("P"))


def _strip_punctuation(word: str) -> str:
    word = word.strip(_ASCII_PUNCTUATION)  # the common case, in C
    if not word or (word[0].isascii() and word[-1].isascii()):
        return word
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start]).startswith("P"):
        start += 1
    while end > start and unicodedata.category(word[end - 1]).startswith("P"):
        end -= 1
    return word[start:end]


def normalise(text: str) -> str:
    words = (_strip_punctuation(w) for w in unicodedata.normalize("NFKC", text).casefold().split())
    return " ".join(w for w in words if w)


def input_text(record) -> str:
    """The text a record's input is compared by (see the module docstring)."""
    meta = getattr(record, "meta", None) or {}
    messages = meta.get("messages")
    if isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
        return "\n".join(str(m.get("content", "")) for m in messages)
    if isinstance(meta.get("input"), str) and meta["input"].strip():
        return meta["input"]
    return record.prompt


def digest(normalised: str) -> bytes:
    return hashlib.blake2b(normalised.encode("utf-8"), digest_size=8).digest()


def in_part(record, k: int, n: int) -> bool:
    """Whether the record's input falls in part k (1..n) of n: a function of the normalised input
    alone, so records of one input land in one part whatever set or source they come from."""
    return int.from_bytes(digest(normalise(input_text(record))), "big") % n == k - 1


def keyed(records: Iterable) -> Keyed:
    """(id, normalised input) of each record whose input is not empty."""
    out = []
    for r in records:
        key = normalise(input_text(r))
        if key:
            out.append((r.id, key))
    return out


def index(inputs: Iterable[tuple[str, str]]) -> dict[bytes, str]:
    """digest of a normalised input -> the id of its first record: a set to compare against, kept
    as digests so a large training set costs 8 bytes and an id a record."""
    out: dict[bytes, str] = {}
    for id_, key in inputs:
        out.setdefault(digest(key), id_)
    return out


def _entry(test: Keyed, hits: list[tuple[str, str]]) -> dict:
    return {"count": len(hits), "fraction": len(hits) / len(test) if test else 0.0,
            "examples": [list(h) for h in hits[:MAX_EXAMPLES]]}


def overlap(test: Keyed, other: dict[bytes, str]) -> dict:
    """How many of the test set's inputs also appear in `other` (an `index`): {count, fraction
    of the test set, examples: [[test id, other id], ...]}."""
    return _entry(test, [(id_, other[d]) for id_, key in test if (d := digest(key)) in other])


def _contained(needles: list[str], haystacks: list[str], min_cover: float = 0.0) -> Iterable[tuple[int, int]]:
    """(needle, haystack) index pairs where a needle of at least ANCHOR_WORDS words lies inside a
    haystack as whole words, covering at least `min_cover` of the haystack's words. Needles are
    found through their first ANCHOR_WORDS words, so the cost is linear in the haystacks' length."""
    anchors: dict[str, list[int]] = {}
    for i, needle in enumerate(needles):
        words = needle.split(" ")
        if len(words) >= ANCHOR_WORDS:
            anchors.setdefault(" ".join(words[:ANCHOR_WORDS]), []).append(i)
    if not anchors:
        return
    for j, hay in enumerate(haystacks):
        words = hay.split(" ")
        padded = f" {hay} "
        for p in range(len(words) - ANCHOR_WORDS + 1):
            for i in anchors.get(" ".join(words[p:p + ANCHOR_WORDS]), ()):
                n_words = needles[i].count(" ") + 1
                if n_words >= min_cover * len(words) and f" {needles[i]} " in padded:
                    yield i, j


def corpus_overlaps(tests: dict[str, Keyed], documents: list[str]) -> dict[str, dict]:
    """As `overlap`, for each test set against unlabelled documents (see the module docstring);
    examples name a document by its 1-based line. One pass over the corpus for all test sets."""
    docs = [normalise(d) for d in documents]
    inputs = [(name, j, key) for name, recs in tests.items() for j, (_, key) in enumerate(recs)]
    keys = [key for _, _, key in inputs]
    found: dict[int, int] = {}  # input -> a document it overlaps
    exact: dict[bytes, int] = {}
    for i, d in enumerate(docs):
        if d:
            exact.setdefault(digest(d), i)
    for n, key in enumerate(keys):
        if (d := digest(key)) in exact:
            found.setdefault(n, exact[d])
    # Only documents no longer than some test input can lie inside one.
    longest = max((k.count(" ") + 1 for k in keys), default=0)
    short = [i for i, d in enumerate(docs) if ANCHOR_WORDS <= d.count(" ") + 1 <= longest]
    for i, n in _contained([docs[i] for i in short], keys, min_cover=0.5):
        found.setdefault(n, short[i])
    for n, i in _contained(keys, docs):
        found.setdefault(n, i)
    hits: dict[str, list[tuple[str, str]]] = {name: [] for name in tests}
    for n in sorted(found):
        name, j, _ = inputs[n]
        hits[name].append((tests[name][j][0], f"line {found[n] + 1}"))
    return {name: _entry(tests[name], hits[name]) for name in tests}


@dataclass(frozen=True)
class HeldOutSet:
    kind: str            # prompt | preference
    distribution: str    # id | ood
    inputs: Keyed


CORPUS = "pretrain/corpus"


def contamination_report(tests: dict[str, HeldOutSet], others: dict[str, dict[bytes, str]],
                         corpus: list[str] | None = None) -> dict:
    """Per test set: its size and its overlap with every other set (an `index` each), with the test
    sets of its kind on the other side of the ID/OOD line, and with the corpus when given:
    {name: {kind, distribution, n, against: {other: overlap entry}}}."""
    report = {}
    in_corpus = corpus_overlaps({n: t.inputs for n, t in tests.items()}, corpus) if corpus is not None else {}
    indexed = {name: index(t.inputs) for name, t in tests.items()}
    for name, t in tests.items():
        against = {other: overlap(t.inputs, keys) for other, keys in others.items()}
        for other, u in tests.items():
            if u.kind == t.kind and u.distribution != t.distribution:
                against[other] = overlap(t.inputs, indexed[other])
        if name in in_corpus:
            against[CORPUS] = in_corpus[name]
        report[name] = {"kind": t.kind, "distribution": t.distribution, "n": len(t.inputs), "against": against}
    return report


def violations(report: dict, threshold: float) -> list[tuple[str, str, dict]]:
    """(test set, other set, entry) where the overlap is above the threshold, worst first."""
    out = [(name, other, e) for name, t in report.items() for other, e in t["against"].items()
           if e["count"] and e["fraction"] > threshold]
    return sorted(out, key=lambda v: -v[2]["fraction"])


def error_message(report: dict, found: list[tuple[str, str, dict]], threshold: float) -> str:
    name, other, e = found[0]
    n = report[name]["n"]
    shown = ", ".join(f"{t} (= {o})" for t, o in e["examples"])
    more = "".join(f"; also {t} with {o}: {x['count']} of {report[t]['n']}" for t, o, x in found[1:4])
    more += f"; and {len(found) - 4} more" if len(found) > 4 else ""
    return (f"contamination: test set {name} shares {e['count']} of {n} inputs ({e['fraction']:.1%}) with "
            f"{other}, above task.contamination_threshold={threshold:g}; first overlapping ids: {shown}{more}. "
            "Make the sets disjoint (for a datasets task, give the validation and test refs different "
            "`part:`s, e.g. 1/2 and 2/2), or raise task.contamination_threshold (1 reports without stopping: "
            "every count is then under 'contamination' in the data stage's task.json)")
