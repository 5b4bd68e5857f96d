"""Task sections: the embedded synthetic task, your own JSONL files, or public datasets by name.

Whether a test set is in or out of distribution is declared here (`distribution: id | ood`), never
inferred from its name; `rlhflab.layout` turns the declarations into the data layout that the
data stage writes into task.json and every later stage reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from rlhflab.config.base import Section
from rlhflab.data.sources import ADAPTERS
from rlhflab.data.synthetic import TOPICS


def _contamination_threshold():
    # Every task kind has it: the data stage checks every task the same way (rlhflab.contamination).
    return Field(0.01, ge=0.0, le=1.0, description=(
        "the largest fraction of a test set's inputs that may also appear in a training, validation or "
        "policy-prompt set, the pretraining corpus, or (ID vs OOD) another test set; above it the data stage "
        "stops. 0 = no overlap at all; 1 = report only"))


class SyntheticTask(Section):
    """The embedded TL;DR-like task (see rlhflab.data.synthetic)."""

    kind: Literal["synthetic"] = "synthetic"
    n_pretrain: int = Field(6000, ge=100, description="unlabelled posts for the pretrain stage")
    n_sft_train: int = Field(2000, ge=10)
    n_sft_validation: int = Field(200, ge=10)
    n_preference_train: int = Field(2000, ge=10)
    n_preference_validation: int = Field(300, ge=10)
    n_preference_test: int = Field(300, ge=10, description="per ID / OOD preference test set")
    n_preference_proxy: int | None = Field(
        None, ge=0, description="pairs for the proxy RM alone (kirk2024 appendix J.3: other data than the RM's): "
        "fresh posts from every ID and OOD region of the split in equal shares, labelled by the gold reward, not the "
        "annotators. null: n_preference_train + n_preference_validation (the pairs the proxy RM trained on when "
        "it shared the RM's); 0: no such set, the proxy RM trains on the RM's pairs with another seed")
    n_policy_prompts: int = Field(1000, ge=10, description="prompts for PPO rollouts")
    n_policy_validation: int = Field(100, ge=10)
    n_test: int = Field(200, ge=10, description="inputs per ID / OOD test set")
    id_topics: list[str] = Field(
        default_factory=lambda: ["relationships", "family", "work"],
        description="topics ('subreddits') in distribution; the others form the topic OOD set "
        "(kirk2024 appendix J.1 uses r/relationships as ID)",
    )
    split: Literal["joint", "length", "sentiment", "topic"] = Field(
        "joint", description="the ID/OOD design. joint: ID = posts from id_topics that are shorter than the median "
        "length AND less positive than the median sentiment; OOD test sets ood_length, ood_sentiment, "
        "ood_topic_0/25/50/100 (graded share of unseen facts) and ood_news (domain) each change one factor. "
        "length | sentiment | topic: one of kirk2024's single-factor 50/50 splits (appendix J.1): ID = the reddit "
        "posts below the median on that factor only (shorter; less positive; from id_topics), the other factors "
        "free; one OOD test set `ood` = the complement on that factor (for topic: the other topics with their own "
        "vocabulary); no news set. kirk2024 averages over the three: run each under its own `name`, then "
        "`rlhflab aggregate` the runs",
    )
    min_filler: int = Field(0, ge=0, le=20, description="irrelevant sentences per post, lower bound")
    max_filler: int = Field(8, ge=0, le=20)
    reference_incomplete_rate: float = Field(0.25, ge=0.0, le=1.0)
    annotator_agreement: float = Field(
        0.72, gt=0.5, lt=1.0,
        description="expected agreement of simulated annotators with the gold ordering "
        "(~70% human inter-annotator agreement, kirk2024 §4 / Stiennon et al.)",
    )
    median_pool: int = Field(4000, ge=100, description="posts drawn to fix the length/sentiment medians")
    contamination_threshold: float = _contamination_threshold()

    @model_validator(mode="after")
    def _check(self) -> "SyntheticTask":
        unknown = sorted(set(self.id_topics) - set(TOPICS))
        if unknown:
            raise ValueError(f"id_topics: unknown topic(s) {unknown}; choose from {sorted(TOPICS)}")
        if not self.id_topics or set(self.id_topics) == set(TOPICS):
            raise ValueError("id_topics: name at least one topic and leave at least one out (the topic OOD set)")
        if self.min_filler > self.max_filler:
            raise ValueError("min_filler must not exceed max_filler")
        if 0 < self.proxy_pairs < 10:
            raise ValueError("n_preference_proxy: 0 (none) or at least 10 (the proxy RM selects on 5% of them)")
        return self

    @property
    def proxy_pairs(self) -> int:
        """How many pairs the data stage draws for the proxy RM (0: none)."""
        if self.n_preference_proxy is None:
            return self.n_preference_train + self.n_preference_validation
        return self.n_preference_proxy


class TestSetRole(Section):
    """Where a test set sits relative to the training distribution."""

    distribution: Literal["id", "ood"] = Field(description="in distribution (id) or out of distribution (ood)")
    shift: str | None = Field(None, description="ood: what differs from the ID data (length, sentiment, domain, ...)")
    compare_to: str | None = Field(
        None, description="ood: the ID test set its generalisation gap is measured against "
        "(default: the only ID test set)")

    @model_validator(mode="after")
    def _check_role(self) -> "TestSetRole":
        if self.distribution == "id" and (self.shift or self.compare_to):
            raise ValueError("shift and compare_to describe an OOD set; an ID set has neither")
        return self


def _not_a_bare_path(data):
    if isinstance(data, (str, Path)):
        raise ValueError(f"give this test set as {{path: {data}, distribution: id | ood}}: whether a set is in "
                         "or out of distribution is declared, not read from its name")
    return data


class FileTestSet(TestSetRole):
    """A test set from a JSONL file, with its place relative to the training distribution."""

    path: Path

    _bare = model_validator(mode="before")(_not_a_bare_path)


def check_test_roles(sets: dict[str, TestSetRole], where: str) -> None:
    """OOD sets compare to a declared ID set; with several ID sets each OOD set names its own."""
    ids = sorted(k for k, v in sets.items() if v.distribution == "id")
    for name, s in sets.items():
        if s.distribution != "ood":
            continue
        if s.compare_to is not None and s.compare_to not in ids:
            raise ValueError(f"{where}.{name}.compare_to: {s.compare_to!r} is not an ID set of {where} "
                             f"(ID sets: {ids or 'none'})")
        if s.compare_to is None and len(ids) > 1:
            raise ValueError(f"{where}.{name}.compare_to: {where} has several ID sets ({', '.join(ids)}); "
                             "name the one this OOD set's gap is measured against")


class FilesTask(Section):
    """Your own data as JSONL files in rlhflab's record schemas (see rlhflab.data.records)."""

    kind: Literal["files"] = "files"
    sft_train: Path
    sft_validation: Path | None = Field(None, description="default: a seeded 5% of sft_train")
    preference_train: Path | None = None
    preference_validation: Path | None = None
    policy_prompts: Path | None = None
    policy_validation: Path | None = None
    test_sets: dict[str, FileTestSet] = Field(
        default_factory=dict, description="name -> {path, distribution: id|ood, shift?, compare_to?} of prompt files")
    preference_tests: dict[str, FileTestSet] = Field(default_factory=dict, description="as test_sets, of pairs")
    pretrain_corpus: Path | None = Field(None, description="JSONL of {'text'} for the pretrain stage")
    contamination_threshold: float = _contamination_threshold()

    @model_validator(mode="after")
    def _check(self) -> "FilesTask":
        check_test_roles(self.test_sets, "test_sets")
        check_test_roles(self.preference_tests, "preference_tests")
        return self


class DatasetRef(Section):
    """Records from a public dataset through its adapter (rlhflab.data.sources): from the Hugging
    Face hub by the adapter's id, or from a local file of rows in the source's own schema."""

    source: str = Field(description="adapter name, e.g. tldr, summarize_from_feedback, ultrafeedback_fine_grained "
                        "(`rlhflab data sources` lists them)")
    split: str = Field("train", description="the source's split (our name; the adapter maps it to the hub's)")
    path: Path | None = Field(None, description="local JSON/JSONL/parquet rows in the source's schema; "
                              "empty = load from the hub (needs a network or the datasets cache)")
    limit: int | None = Field(None, ge=1, description="keep a seeded random sample of this many records")
    part: str | None = Field(
        None, description="K/N: keep only the records whose input falls in part K of N of a hash of the "
        "normalised input (rlhflab.contamination), before `limit`; refs taking different parts share no "
        "input, whatever their source or split (e.g. validation 1/2, test 2/2 of one split)")
    domain: Literal["tldr", "news"] | None = Field(
        None, description="keep only the records of one summarisation domain, before `limit`: tldr (Reddit posts) "
        "or news (CNN/DailyMail articles). summarize_from_feedback's validation split holds both, so an ID set "
        "drawn from it needs domain: tldr and its news comparisons form an OOD set with domain: news")

    @model_validator(mode="after")
    def _check(self) -> "DatasetRef":
        if self.source not in ADAPTERS:
            raise ValueError(f"source: unknown source {self.source!r}; known: {', '.join(sorted(ADAPTERS))}")
        if self.part is not None and self.parts is None:
            raise ValueError(f"part: expected K/N with 1 <= K <= N and N >= 2, e.g. 1/2; got {self.part!r}")
        return self

    @property
    def parts(self) -> tuple[int, int] | None:
        """(K, N) of `part`, or None when it is unset or malformed."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", self.part or "")
        if m is None:
            return None
        k, n = int(m.group(1)), int(m.group(2))
        return (k, n) if 1 <= k <= n and n >= 2 else None


class DatasetTestSet(DatasetRef, TestSetRole):
    """A test set from a public dataset, with its place relative to the training distribution.
    Under an `ood_split`, an ID set is split into its ID and OOD parts; an OOD set stays whole."""


class OODSplit(Section):
    """Split every set into ID and OOD parts (kirk2024 appendix J.1): train and validation keep the ID
    part; each ID test set becomes its ID part and an OOD part (`ood_<by>` for the set `id`,
    `<name>_ood_<by>` for another); a declared OOD set stays whole."""

    by: Literal["length", "sentiment", "category"]
    id_values: list[str] = Field(default_factory=list, description="category split: the ID categories "
                                 "(meta.category: subreddit, news site, source dataset)")

    @model_validator(mode="after")
    def _check(self) -> "OODSplit":
        if self.by == "category" and not self.id_values:
            raise ValueError("ood_split.id_values: a category split needs the in-distribution categories, "
                             "e.g. [relationships]")
        return self


class DatasetsTask(Section):
    """Public datasets by name (kirk2024 §4, ivison2024 §3.1), optionally split ID/OOD by length, sentiment or
    category. Unset policy prompts default to the SFT sets' prompts (kirk2024 appendix J.1: the RLHF
    split is the SFT split without the summaries)."""

    kind: Literal["datasets"] = "datasets"
    sft_train: DatasetRef | None = None
    sft_validation: DatasetRef | None = None
    preference_train: DatasetRef | None = None
    preference_validation: DatasetRef | None = None
    policy_prompts: DatasetRef | None = None
    policy_validation: DatasetRef | None = None
    test_sets: dict[str, DatasetTestSet] = Field(
        default_factory=dict, description="name -> prompt set with distribution: id|ood (shift?, compare_to?)")
    preference_tests: dict[str, DatasetTestSet] = Field(default_factory=dict, description="as test_sets, of pairs")
    ood_split: OODSplit | None = None
    chat_template: Literal["auto", "tulu", "none"] = Field(
        "auto", description="how chat sources' messages become prompts: the model tokenizer's own template "
        "(auto; Tulu 2's format when it has none), Tulu 2's, or plain text")
    contamination_threshold: float = _contamination_threshold()

    @model_validator(mode="after")
    def _check(self) -> "DatasetsTask":
        if self.sft_train is None and self.preference_train is None:
            raise ValueError("a datasets task needs sft_train or preference_train")
        check_test_roles(self.test_sets, "test_sets")
        check_test_roles(self.preference_tests, "preference_tests")
        return self


Task = Annotated[Union[SyntheticTask, FilesTask, DatasetsTask], Field(discriminator="kind")]

