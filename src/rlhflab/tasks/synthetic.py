"""The synthetic task's data: ID train/validation/test sets and OOD test sets, each changing one factor.

The ID distribution is posts from the ID topics that are shorter than the median length and less
positive than the median sentiment (kirk2024 appendix J.1: "ID below the median, OOD the complement").
Each OOD set flips exactly one of those factors, so a drop from ID to that set is attributable to
one kind of shift; a news domain plays CNN/DailyMail's role (kirk2024 §4). Medians are taken over a
pool of posts drawn from the whole reddit distribution.

The topic shift is graded. kirk2024's subreddit split moves to other subreddits whose posts still
share much of r/relationships' vocabulary, whereas each synthetic topic has facts (who / event /
question phrases) of its own, so on posts whose facts are all unseen every policy loses nearly
every comparison with the references and the set says nothing about generalisation. The sets
`ood_topic_<f>` (shift "topic (<f>% unseen facts)") hold posts of the OOD topics -- their
subreddit, and titles, filler and feelings as on any post -- whose who / event / question facts are
each drawn from the topic's own vocabulary, never seen in SFT, with probability f% (0, 25, 50, 100)
and otherwise from the vocabulary of one ID topic, chosen per post. `ood_topic_0` differs from ID
only in its subreddit; `ood_topic_100` is the plain topic shift. Every fact phrase is unique in the
whole vocabulary, so the gold reward recovers the facts of a mixed post from its text like those
of any other. `ood_news` is the extreme shift: another domain, with its own vocabulary and forms.

That is the default, `split: joint`. With `split: length | sentiment | topic` the task is instead one
of kirk2024's single-factor splits (appendix J.1; each its own experiment, the paper averages over
the three): ID is the reddit posts below the median on that factor only -- shorter than the median
length, less positive than the median sentiment, or from the ID topics -- whatever the other
factors, and the one OOD test set `ood` is the complement on that factor (for topic: posts of the
other topics, facts from their own vocabulary, as in `ood_topic_100`); no news set. SFT, preference
train/validation and the policy prompts come from the same ID region in every design; the proxy
RM's pairs (`n_preference_proxy`, see `proxy_pairs`) come from every region, labelled by the gold reward.

No post text appears twice in the task (train, validation, test, or the pretraining corpus). The
partly-unseen topic sets, and after them the proxy RM's pairs, are drawn after all other data, each
from their own random stream, so every other set is the same whether or not they exist.
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path
from typing import Callable

from rlhflab.config import SyntheticTask
from rlhflab.data import synthetic as syn
from rlhflab.data.records import PreferenceRecord, PromptRecord, SFTRecord, write_json, write_jsonl
from rlhflab.layout import PRETRAIN_CORPUS, TASK_INFO, DataSet, Layout, test_set, train_and_validation

# topic-shift test set -> probability that each of its posts' who / event / question facts is drawn
# from the OOD topic's own (unseen) vocabulary rather than from an ID topic's
TOPIC_SHIFTS = {"ood_topic_0": 0.0, "ood_topic_25": 0.25, "ood_topic_50": 0.5, "ood_topic_100": 1.0}
TOPIC_SLOTS = ("who", "event", "question")  # the feelings are shared by all topics
# test set -> the one factor it changes from the ID distribution (None: the ID set itself)
SHIFTS = {"id": None, "ood_length": "length", "ood_sentiment": "sentiment",
          **{name: f"topic ({f:.0%} unseen facts)" for name, f in TOPIC_SHIFTS.items()},
          "ood_news": "domain"}
TEST_SETS = tuple(SHIFTS)  # of the joint design
ALL_TOPICS = sorted(syn.TOPICS)
# Drawn after everything else, from their own random stream (see the module docstring).
_DRAWN_LAST = tuple(name for name, f in TOPIC_SHIFTS.items() if f < 1)
_DRAWN_FIRST = tuple(name for name in TEST_SETS if name not in _DRAWN_LAST)


def split_shifts(split: str = "joint") -> dict[str, str | None]:
    """Test set -> the factor it changes from ID (None: the ID set), for a `task.split`."""
    return SHIFTS if split == "joint" else {"id": None, "ood": split}


def synthetic_layout(split: str = "joint", proxy: bool = True) -> Layout:
    tests = [test_set(kind, name, "id" if shift is None else "ood", shift)
             for kind in ("prompt", "preference") for name, shift in split_shifts(split).items()]
    return Layout.build(train_and_validation() + tests + ([DataSet("preference", "proxy", "proxy")] if proxy else []))


def _split_summary(cfg: SyntheticTask, median_words: float, median_sentiment: float) -> dict:
    """What task.json records about the ID/OOD design (the joint design's keys as they always were)."""
    if cfg.split == "joint":
        return {"median_words": median_words, "median_sentiment": median_sentiment,
                "id_topics": cfg.id_topics, "topic_shifts": TOPIC_SHIFTS}
    others = ", ".join(sorted(set(syn.TOPICS) - set(cfg.id_topics)))
    id_rule, ood_rule, free = {
        "length": (f"shorter than the median {median_words:g} words", f"of at least {median_words:g} words",
                   "topic and sentiment"),
        "sentiment": (f"less positive than the median sentiment {median_sentiment:g}",
                      f"of sentiment at least {median_sentiment:g}", "topic and length"),
        "topic": (f"from topics {', '.join(cfg.id_topics)}",
                  f"from the other topics ({others}), facts from their own vocabulary (100% unseen facts)",
                  "length and sentiment"),
    }[cfg.split]
    return {"split": cfg.split, "id_rule": f"reddit posts {id_rule}, any {free}",
            "ood_rule": f"reddit posts {ood_rule}, any {free}",
            "medians": {"n_words": median_words, "sentiment": median_sentiment},
            "id_topics": cfg.id_topics if cfg.split == "topic" else ALL_TOPICS}


class _Sampler:
    """Draws posts from one region of the distribution, never repeating a post text."""

    def __init__(self, cfg: SyntheticTask, rng: random.Random, seen: set[str],
                 median_words: float, median_sentiment: float):
        self.cfg, self.rng, self.seen = cfg, rng, seen
        self.median_words, self.median_sentiment = median_words, median_sentiment
        self.ood_topics = sorted(set(syn.TOPICS) - set(cfg.id_topics))
        self.counter = 0

    def draw(self, region: str, prefix: str) -> syn.Post:
        if region not in split_shifts(self.cfg.split):
            raise ValueError(f"unknown region {region!r}; use one of {list(split_shifts(self.cfg.split))}")
        for _ in range(100_000):
            post = self._candidate(region, prefix)
            if not self._in_region(post, region) or post.text in self.seen:
                continue
            self.seen.add(post.text)
            return post
        raise RuntimeError(f"could not draw a new post for region {region!r}; the vocabulary is "
                           "exhausted; lower the dataset sizes in task.*")

    def _candidate(self, region: str, prefix: str) -> syn.Post:
        if self.cfg.split == "topic":
            return self._post("reddit", self.rng.choice(self.cfg.id_topics if region == "id" else self.ood_topics),
                              prefix)
        if self.cfg.split != "joint":  # a length or sentiment split: any topic
            return self._post("reddit", self.rng.choice(ALL_TOPICS), prefix)
        if region == "ood_news":
            return self._post("news", "news", prefix)
        if region in TOPIC_SHIFTS:
            topic = self.rng.choice(self.ood_topics)
            return self._post("reddit", topic, prefix, self._topic_facts(topic, TOPIC_SHIFTS[region]))
        return self._post("reddit", self.rng.choice(self.cfg.id_topics), prefix)

    def _in_region(self, post: syn.Post, region: str) -> bool:
        """Whether a candidate lies in the region's length / sentiment half (topics and domain are
        fixed by `_candidate`)."""
        short, negative = post.n_words < self.median_words, post.sentiment < self.median_sentiment
        if self.cfg.split == "joint":
            return region == "ood_news" or (short == (region != "ood_length")
                                            and negative == (region != "ood_sentiment"))
        if self.cfg.split == "topic":
            return True
        return (short if self.cfg.split == "length" else negative) == (region == "id")

    def _topic_facts(self, topic: str, unseen: float) -> dict[str, list[str]] | None:
        """slot -> phrases a post of the OOD `topic` draws its facts from: each topic slot from the
        topic's own vocabulary with probability `unseen`, else from one ID topic's, chosen per post
        (None: the topic's own vocabulary throughout, drawing nothing from the random stream)."""
        if unseen >= 1:
            return None
        seen_vocab = syn.TOPICS[self.rng.choice(self.cfg.id_topics)]
        return {slot: (syn.TOPICS[topic] if self.rng.random() < unseen else seen_vocab)[slot]
                for slot in TOPIC_SLOTS}

    def _post(self, domain: str, topic: str, prefix: str,
              facts_from: dict[str, list[str]] | None = None) -> syn.Post:
        self.counter += 1
        n_filler = self.rng.randint(self.cfg.min_filler, self.cfg.max_filler)
        return syn.make_post(self.rng, f"{prefix}-{self.counter}", domain, topic, n_filler, facts_from)


def _meta(post: syn.Post, region: str) -> dict:
    return {"topic": post.topic, "domain": post.domain, "n_words": post.n_words,
            "sentiment": post.sentiment, "split": region}


def _preference(rng: random.Random, post: syn.Post, region: str) -> tuple[PreferenceRecord, float, float]:
    for _ in range(50):
        a, b = syn.behaviour_summary(rng, post), syn.behaviour_summary(rng, post)
        ga, gb = syn.gold_reward(post.prompt, a), syn.gold_reward(post.prompt, b)
        if a.strip() and b.strip() and a != b and ga != gb:
            rec = PreferenceRecord(prompt=post.prompt, chosen=a, rejected=b, id=post.id,
                                   meta=_meta(post, region))
            return rec, ga, gb
    raise RuntimeError(f"post {post.id}: could not draw two summaries of different quality")


def proxy_pairs(sampler: _Sampler, rng: random.Random, regions: list[str], n: int) -> list[PreferenceRecord]:
    """The proxy RM's pairs, on "a different data distribution" than the RM's (kirk2024 appendix J.3):
    fresh posts, no input of any other set, from every region of the split in turn -- ID and each OOD
    region, as J.3 trains "without splitting" -- labelled by the gold reward itself, where the RM's
    pairs carry the simulated annotators' noise."""
    out = []
    for i in range(n):
        region = regions[i % len(regions)]
        rec, ga, gb = _preference(rng, sampler.draw(region, f"proxy-{region}"), region)
        if ga < gb:
            rec.chosen, rec.rejected = rec.rejected, rec.chosen
        out.append(rec)
    return out


def build_synthetic_task(cfg: SyntheticTask, seed: int, out_dir: Path,
                         progress: Callable[[str], None] = lambda s: None) -> dict:
    """Write every dataset of the task under `out_dir`; return a summary for the manifest."""
    rng = random.Random(seed)
    layout = synthetic_layout(cfg.split, proxy=cfg.proxy_pairs > 0)
    shifts = split_shifts(cfg.split)
    drawn_first, drawn_last = (_DRAWN_FIRST, _DRAWN_LAST) if cfg.split == "joint" else (tuple(shifts), ())

    def path(kind: str, role: str, name: str | None = None) -> Path:
        return out_dir / layout.require(kind, role, name).file

    pool_rng = random.Random(rng.randrange(2**31))
    pool = [syn.make_post(pool_rng, f"pool-{i}", "reddit", pool_rng.choice(sorted(syn.TOPICS)),
                          pool_rng.randint(cfg.min_filler, cfg.max_filler))
            for i in range(cfg.median_pool)]
    median_words = statistics.median(p.n_words for p in pool)
    median_sentiment = statistics.median(p.sentiment for p in pool)

    seen: set[str] = set()
    sampler = _Sampler(cfg, random.Random(rng.randrange(2**31)), seen, median_words, median_sentiment)
    ref_rng = random.Random(rng.randrange(2**31))

    def refs(posts: list[syn.Post], region: str) -> list[SFTRecord]:
        return [SFTRecord(p.prompt, " " + syn.reference_summary(ref_rng, p, cfg.reference_incomplete_rate),
                          p.id, _meta(p, region)) for p in posts]

    def preference_tests(sampler: _Sampler, pref_rng: random.Random, regions: tuple[str, ...]) -> dict:
        return {f"test_{region}": [_preference(pref_rng, sampler.draw(region, f"pref-{region}"), region)
                                   for _ in range(cfg.n_preference_test)]
                for region in regions}

    agreement: dict[str, float] = {}

    def label_and_write(label_rng: random.Random, pref_sets: dict, scale: float) -> None:
        for name, rows in pref_sets.items():
            out, agree = [], 0
            for rec, ga, gb in rows:
                prefers_a = syn.annotate(label_rng, ga, gb, scale)
                if not prefers_a:
                    rec.chosen, rec.rejected = rec.rejected, rec.chosen
                agree += prefers_a == (ga > gb)
                out.append(rec)
            agreement[name] = agree / len(rows)
            role, _, test = name.partition("_")
            write_jsonl(path("preference", role, test or None), out)

    test_sizes: dict[str, int] = {}

    def prompt_tests(sampler: _Sampler, ref_rng: random.Random, regions: tuple[str, ...]) -> None:
        for region in regions:
            # Test references are always complete, as a careful annotator would write them.
            rows = [PromptRecord(p.prompt, syn.reference_summary(ref_rng, p, 0.0), p.id, _meta(p, region))
                    for p in (sampler.draw(region, f"test-{region}") for _ in range(cfg.n_test))]
            write_jsonl(path("prompt", "test", region), rows)
            test_sizes[region] = len(rows)

    progress("sft data")
    sft_train = refs([sampler.draw("id", "sft-train") for _ in range(cfg.n_sft_train)], "id")
    sft_val = refs([sampler.draw("id", "sft-val") for _ in range(cfg.n_sft_validation)], "id")
    write_jsonl(path("sft", "train"), sft_train)
    write_jsonl(path("sft", "validation"), sft_val)

    progress("preference data")
    pref_rng = random.Random(rng.randrange(2**31))
    pref_sets: dict[str, list[tuple[PreferenceRecord, float, float]]] = {
        "train": [_preference(pref_rng, sampler.draw("id", "pref-train"), "id")
                  for _ in range(cfg.n_preference_train)],
        "validation": [_preference(pref_rng, sampler.draw("id", "pref-val"), "id")
                       for _ in range(cfg.n_preference_validation)],
        **preference_tests(sampler, pref_rng, drawn_first),
    }
    # One annotator scale for all sets, calibrated on the training pairs.
    scale = syn.annotator_scale([ga - gb for _, ga, gb in pref_sets["train"]], cfg.annotator_agreement)
    label_and_write(random.Random(rng.randrange(2**31)), pref_sets, scale)

    progress("prompts and test sets")
    write_jsonl(path("prompt", "train"),
                [PromptRecord(p.prompt, None, p.id, _meta(p, "id"))
                 for p in (sampler.draw("id", "rl-train") for _ in range(cfg.n_policy_prompts))])
    write_jsonl(path("prompt", "validation"),
                [PromptRecord(p.prompt, syn.reference_summary(ref_rng, p, 0.0), p.id, _meta(p, "id"))
                 for p in (sampler.draw("id", "rl-val") for _ in range(cfg.n_policy_validation))])
    prompt_tests(sampler, ref_rng, drawn_first)

    progress("pretraining corpus")
    # Unlabelled text from the whole world (every topic, length, sentiment, both domains), as
    # a web-scale corpus would hold; no summaries, so summarising is learnt only in SFT.
    corpus_rng = random.Random(rng.randrange(2**31))
    corpus, corpus_texts = [], []
    for i in range(cfg.n_pretrain):
        domain = "news" if corpus_rng.random() < 0.25 else "reddit"
        topic = "news" if domain == "news" else corpus_rng.choice(sorted(syn.TOPICS))
        post = syn.make_post(corpus_rng, f"pt-{i}", domain, topic,
                             corpus_rng.randint(cfg.min_filler, cfg.max_filler))
        if post.text in seen:
            continue
        corpus.append({"text": post.document})
        corpus_texts.append(post.text)
    write_jsonl(out_dir / PRETRAIN_CORPUS, corpus)

    if drawn_last:
        progress("graded topic-shift sets")
        # Their own random streams, and never a post text of any set above or of the corpus.
        late_rng = random.Random(rng.randrange(2**31))
        seen.update(corpus_texts)
        late = _Sampler(cfg, random.Random(late_rng.randrange(2**31)), seen, median_words, median_sentiment)
        late_pref = preference_tests(late, random.Random(late_rng.randrange(2**31)), drawn_last)
        label_and_write(random.Random(late_rng.randrange(2**31)), late_pref, scale)
        prompt_tests(late, random.Random(late_rng.randrange(2**31)), drawn_last)
        pref_sets.update(late_pref)

    if cfg.proxy_pairs:
        progress("the proxy RM's pairs")
        # Drawn last from its own stream, so every set above is as it was without it.
        seen.update(corpus_texts)
        proxy_rng = random.Random(rng.randrange(2**31))
        proxy = _Sampler(cfg, random.Random(proxy_rng.randrange(2**31)), seen, median_words, median_sentiment)
        write_jsonl(path("preference", "proxy"), proxy_pairs(proxy, random.Random(proxy_rng.randrange(2**31)),
                                                             list(shifts), cfg.proxy_pairs))

    tests = [f"test_{t}" for t in shifts]
    summary = {
        "task": "synthetic-tldr",
        "gold_reward": "synthetic-tldr",
        **_split_summary(cfg, median_words, median_sentiment),
        "annotator_scale": scale,
        "annotator_agreement": {k: agreement[k] for k in ["train", "validation", *tests]},
        "sizes": {"sft_train": len(sft_train), "sft_validation": len(sft_val),
                  **{f"preference_{k}": len(pref_sets[k]) for k in ["train", "validation", *tests]},
                  "preference_proxy": cfg.proxy_pairs,
                  "policy_prompts": cfg.n_policy_prompts, "pretrain_corpus": len(corpus),
                  **{f"test_{k}": test_sizes[k] for k in shifts}},
    }
    write_json(out_dir / TASK_INFO, {**summary, "sets": layout.to_json()})
    return summary
