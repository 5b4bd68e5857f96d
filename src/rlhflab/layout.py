"""The data layout: every set a task has, the file it lies in, and whether it is in or out of
distribution.

The data stage builds a `Layout` for its task and writes it into `task.json`; every later stage,
the report and the aggregation read it back with `Layout.from_task_info`. Nothing else names data
files or decides from a set's name whether it is in distribution.

Files, relative to the data stage's folder (the comparisons stage rewrites the preference files
in the same layout):

    sft/train.jsonl, sft/validation.jsonl                  SFT records
    preference/train.jsonl, preference/validation.jsonl    preference pairs
    preference/test_<name>.jsonl                           preference test sets (ID and OOD)
    preference/proxy.jsonl                                 (optional) the proxy RM's own pairs, on inputs
                                                           of no other set (rlhflab.stages.rm)
    prompts/train.jsonl, prompts/validation.jsonl          policy-training prompts
    test/<name>.jsonl                                      prompt test sets with references
    pretrain/corpus.jsonl                                  unlabelled text {"text"}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Literal

Kind = Literal["sft", "preference", "prompt"]
Role = Literal["train", "validation", "test", "proxy"]  # proxy: the proxy RM's training pairs

PRETRAIN_CORPUS = "pretrain/corpus.jsonl"
TASK_INFO = "task.json"


@dataclass(frozen=True)
class DataSet:
    """One set of records.

    kind:         sft | preference | prompt (which record schema its file holds)
    role:         train | validation | test | proxy (a preference set only the proxy RM learns from)
    name:         "train" / "validation", or the test set's name
    distribution: id | ood, relative to the training data
    shift:        for an OOD set, what differs from the ID data (length, sentiment, topic, domain, ...)
    compare_to:   for an OOD test set, the ID test set of the same kind its gap is measured against
    """

    kind: Kind
    role: Role
    name: str
    distribution: Literal["id", "ood"] = "id"
    shift: str | None = None
    compare_to: str | None = None

    @property
    def file(self) -> str:
        folder = {"sft": "sft", "preference": "preference", "prompt": "prompts"}[self.kind]
        if self.role != "test":
            return f"{folder}/{self.role}.jsonl"
        return f"preference/test_{self.name}.jsonl" if self.kind == "preference" else f"test/{self.name}.jsonl"

    @property
    def is_ood(self) -> bool:
        return self.distribution == "ood"

    def to_dict(self) -> dict:
        return {**asdict(self), "file": self.file}


def train_and_validation(kinds: Iterable[Kind] = ("sft", "preference", "prompt")) -> list[DataSet]:
    """The train and validation sets of each kind (always in distribution)."""
    return [DataSet(k, role, role) for k in kinds for role in ("train", "validation")]


def test_set(kind: Kind, name: str, distribution: str, shift: str | None = None,
             compare_to: str | None = None) -> DataSet:
    return DataSet(kind, "test", name, distribution, shift if distribution == "ood" else None,
                   compare_to if distribution == "ood" else None)


class LayoutError(ValueError):
    pass


@dataclass(frozen=True)
class Layout:
    sets: tuple[DataSet, ...]

    def __post_init__(self):
        files = [s.file for s in self.sets]
        if len(set(files)) != len(files):
            raise LayoutError(f"two sets share a file: {sorted(f for f in files if files.count(f) > 1)}")
        for kind in ("prompt", "preference"):
            tests = {s.name: s for s in self.tests(kind)}
            ids = [n for n, s in tests.items() if not s.is_ood]
            for s in tests.values():
                if s.compare_to is not None and (s.compare_to not in tests or tests[s.compare_to].is_ood):
                    raise LayoutError(f"{kind} test set {s.name!r} compares to {s.compare_to!r}, which is not an "
                                      f"ID {kind} test set (ID sets: {ids})")

    @classmethod
    def build(cls, sets: Iterable[DataSet]) -> "Layout":
        """A layout in which each OOD test set without a `compare_to` compares to its kind's only
        ID test set (when there is exactly one)."""
        sets = list(sets)
        out = []
        for s in sets:
            if s.role == "test" and s.is_ood and s.compare_to is None:
                ids = [t.name for t in sets if t.kind == s.kind and t.role == "test" and not t.is_ood]
                if len(ids) == 1:
                    s = DataSet(s.kind, s.role, s.name, s.distribution, s.shift, ids[0])
            out.append(s)
        return cls(tuple(out))

    def get(self, kind: Kind, role: Role, name: str | None = None) -> DataSet | None:
        name = name or role
        return next((s for s in self.sets if s.kind == kind and s.role == role and s.name == name), None)

    def require(self, kind: Kind, role: Role, name: str | None = None) -> DataSet:
        s = self.get(kind, role, name)
        if s is None:
            have = ", ".join(x.name for x in self.sets if x.kind == kind and x.role == role) or "none"
            raise LayoutError(f"the task has no {kind} {role} set {name or role!r} (it has: {have})")
        return s

    def test_set_or_first_id(self, name: str | None, kind: Kind = "prompt") -> DataSet:
        """The named test set, or with None the first ID test set the task declared (named "id" in
        the synthetic task, whatever the user named it in theirs)."""
        if name is not None:
            return self.require(kind, "test", name)
        first = next((s for s in self.tests(kind) if s.distribution == "id"), None)
        if first is None:
            raise LayoutError(f"the task has no ID {kind} test set; declare one (distribution: id)")
        return first

    def tests(self, kind: Kind = "prompt") -> list[DataSet]:
        """Test sets of one kind, in the order the task declared them."""
        return [s for s in self.sets if s.kind == kind and s.role == "test"]

    def to_json(self) -> list[dict]:
        return [s.to_dict() for s in self.sets]

    @classmethod
    def from_json(cls, rows: list[dict]) -> "Layout":
        return cls(tuple(DataSet(r["kind"], r["role"], r["name"], r.get("distribution", "id"), r.get("shift"),
                                 r.get("compare_to")) for r in rows))

    @classmethod
    def from_task_info(cls, info: dict) -> "Layout":
        if "sets" not in info:
            raise LayoutError("task.json has no 'sets': the data stage that wrote it predates the layout; "
                              "rerun the data stage (rlhflab run --force data)")
        return cls.from_json(info["sets"])


def roles(sets: Iterable[DataSet]) -> dict[str, dict]:
    """{name: {distribution, shift, compare_to}} of test sets, as results files record them."""
    return {s.name: {"distribution": s.distribution, "shift": s.shift, "compare_to": s.compare_to} for s in sets}
