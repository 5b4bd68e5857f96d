"""Time to build a sentiment OOD split (kirk2024 appendix J.1) of a TL;DR-sized layout on this machine:
the SFT train set, its validation set, preference pairs that repeat the SFT posts (as the
summarize-from-feedback comparisons repeat TL;DR posts) and a test set — fit, split every set,
describe every set. Against a baseline measured in the same run: the same work measuring every
record's post anew each time (no memo of TextBlob polarity per distinct post).

    python benchmarks/splits_time.py [--posts 2000]
"""

from __future__ import annotations

import argparse
import time

from rlhflab.data import splits
from rlhflab.data import synthetic as syn
from rlhflab.data.records import PreferenceRecord, SFTRecord


def layout(n: int):
    import random

    rng = random.Random(0)
    posts = [syn.make_post(rng, f"p{i}", "reddit", rng.choice(sorted(syn.TOPICS)), rng.randint(0, 8)) for i in range(n)]
    sft = [SFTRecord(p.prompt, " x", meta={"input": p.text}) for p in posts]
    prefs = [PreferenceRecord(p.prompt, " a", f" b{j}", meta={"input": p.text}) for p in posts for j in range(3)]
    return {"sft/train": sft[: int(n * 0.8)], "sft/validation": sft[int(n * 0.8): int(n * 0.9)],
            "preference/train": prefs, "test/id": sft[int(n * 0.9):]}


def build(sets, fresh_rule_each_time: bool) -> dict:
    rule = splits.fit_split(sets["sft/train"], "sentiment")
    out = {}
    for name, recs in sets.items():
        r = splits.SplitRule("sentiment", rule.threshold) if fresh_rule_each_time else rule
        out[name] = splits.describe(recs, r)
        r = splits.SplitRule("sentiment", rule.threshold) if fresh_rule_each_time else rule
        splits.apply_split(recs, r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=2000)
    a = ap.parse_args()
    sets = layout(a.posts)
    n = sum(len(v) for v in sets.values())
    t = time.perf_counter()
    base = build(sets, fresh_rule_each_time=True)
    t_base = time.perf_counter() - t
    t = time.perf_counter()
    mine = build(sets, fresh_rule_each_time=False)
    t_mine = time.perf_counter() - t
    assert base == mine, "the memo changed a split"
    print(f"{a.posts} posts, {n} records in 4 sets (TextBlob polarity, fit + describe + split each set)")
    print(f"  measured once per post: {t_mine:6.2f} s")
    print(f"  measured per record:    {t_base:6.2f} s   (baseline)")
    print(f"  ratio baseline / rlhflab: {t_base / t_mine:.2f}")
    words = sum(len(r.meta["input"].split()) for v in sets.values() for r in v) / n
    print(f"  (posts of {words:.0f} words on average; TextBlob's cost grows with length — TL;DR's median "
          "is 245 words)")


if __name__ == "__main__":
    main()
