"""The embedded synthetic summarisation task: a miniature of TL;DR (000_02a42c811db97a84.txt §4).

A *post* is rendered from latent facts -- who, what happened, how the author feels, what they
ask -- drawn from topic vocabularies (topics play the role of subreddits), wrapped in irrelevant
detail of varying length and sentiment. A second domain of news-like *articles* (third person,
other vocabulary) plays the role CNN/DailyMail plays for TL;DR.

Reference summaries are written the way people write them: several paraphrase forms, some
incomplete, so SFT learns a distribution of valid summaries rather than one string.

The gold reward scores any summary against the facts the post asserts. Every fact phrase is unique
in the whole vocabulary and filler never uses one, so the facts are recovered from the post text
alone, also when they mix several topics' vocabularies (the graded topic-shift test sets): the gold
reward is a pure function of (prompt, summary), like a human reading both.

Everything is deterministic given a seed.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from rlhflab.data.synthetic_vocabulary import (FEELINGS, FILLER, NEWS, NEWS_FEELING_LINES, NEWS_FEELINGS, NEWS_FILLER,
                                               NEWS_OPENERS, NEWS_QUESTION_LINES, NEWS_SUMMARY_FORMS_COMPLETE,
                                               NEWS_SUMMARY_FORMS_INCOMPLETE, POST_FEELINGS, POST_OPENERS,
                                               POST_QUESTIONS, SUMMARY_FORMS_COMPLETE, SUMMARY_FORMS_INCOMPLETE,
                                               TITLES, TOPICS)
from rlhflab.stats import sigmoid

# The vocabularies (TOPICS, NEWS, FEELINGS, FILLER, the sentence and summary forms) live in
# rlhflab.data.synthetic_vocabulary and are re-exported here.

SLOTS = ("who", "event", "feeling", "question")


def fact_vocabulary() -> dict[str, set[str]]:
    """Every fact phrase of the task, by slot."""
    vocab: dict[str, set[str]] = {s: set() for s in SLOTS}
    for topic in TOPICS.values():
        for slot in ("who", "event", "question"):
            vocab[slot].update(topic[slot])
    for slot in ("who", "event", "question"):
        vocab[slot].update(NEWS[slot])
    vocab["feeling"].update(FEELINGS)
    vocab["feeling"].update(NEWS_FEELINGS)
    return vocab


_VOCAB = fact_vocabulary()
_PHRASE_SLOT = {p.lower(): s for s, ps in _VOCAB.items() for p in ps}  # matched on lowercased text
# Longest first so a greedy scan never credits a shorter phrase inside a longer one.
_PHRASE_RE = re.compile(
    r"\b(" + "|".join(re.escape(p) for p in sorted(_PHRASE_SLOT, key=len, reverse=True)) + r")\b"
)
_WORD_RE = re.compile(r"[a-z0-9']+")


def normalise(text: str) -> str:
    return " ".join(_WORD_RE.findall(text.lower()))


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def find_facts(text: str) -> list[str]:
    """Fact phrases asserted in `text`, in order of appearance (with repeats)."""
    return _PHRASE_RE.findall(normalise(text))


def fact_slots(text: str) -> dict[str, str]:
    """slot -> the phrase `text` asserts for it (the first, if it names several)."""
    out: dict[str, str] = {}
    for phrase in find_facts(text):
        out.setdefault(_PHRASE_SLOT[phrase], phrase)
    return out


def stated_facts(text: str) -> frozenset[tuple[str, str]]:
    """The (slot, phrase) pairs `text` asserts: its content. Every phrase counts, not only the first
    per slot as in fact_slots, so a summary naming a real and an invented `who` differs from one
    naming the real one alone."""
    return frozenset((_PHRASE_SLOT[p], p) for p in find_facts(text))


def delexicalise(text: str) -> list[str]:
    """`text`'s words with each fact phrase replaced by one token naming its slot ("<who>"): its
    form. Case and punctuation are dropped with normalise, so they are not wording."""
    return _PHRASE_RE.sub(lambda m: f"<{_PHRASE_SLOT[m.group(1)]}>", normalise(text)).split()


# --------------------------------------------------------------------------------------------
# Posts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    id: str
    domain: str  # "reddit" | "news"
    topic: str
    facts: dict[str, str]  # slot -> phrase
    text: str
    sentiment: float  # mean polarity of the post's sentences, in [-1, 1]
    title: str = ""

    @property
    def n_words(self) -> int:
        return len(words(self.text))

    @property
    def prompt(self) -> str:
        return format_prompt(self.domain, self.topic, self.title, self.text)

    @property
    def document(self) -> str:
        """The post as unlabelled text (the prompt without the TL;DR cue), for pretraining."""
        return self.prompt.rsplit("\nTL;DR:", 1)[0]


def format_prompt(domain: str, topic: str, title: str, text: str) -> str:
    """TL;DR-style prompt (Stiennon et al.'s format, used by both papers)."""
    if domain == "news":
        return f"ARTICLE: {text}\nTL;DR:"
    return f"SUBREDDIT: r/{topic}\nTITLE: {title}\nPOST: {text}\nTL;DR:"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _fill(template: str, facts: dict[str, str]) -> str:
    out = template.format(**facts, Question=_cap(facts.get("question", "")), Who=_cap(facts.get("who", "")))
    return _cap(out)


def make_post(rng: random.Random, post_id: str, domain: str, topic: str,
              n_filler: int, facts_from: dict[str, list[str]] | None = None) -> Post:
    """Render one post: fact sentences in a random order among `n_filler` filler sentences.

    The who / event / question facts are drawn from `facts_from` (slot -> phrases) when given,
    else from the topic's own vocabulary; the graded topic shift (rlhflab.tasks.synthetic) renders
    posts of one topic with facts drawn partly from other topics' vocabularies.
    """
    if domain == "news":
        vocab, feelings, filler = NEWS, NEWS_FEELINGS, NEWS_FILLER
        openers, feel_lines, q_lines = NEWS_OPENERS, NEWS_FEELING_LINES, NEWS_QUESTION_LINES
    else:
        vocab, feelings, filler = TOPICS[topic], FEELINGS, FILLER
        openers, feel_lines, q_lines = POST_OPENERS, POST_FEELINGS, POST_QUESTIONS
    if facts_from is not None:
        vocab = facts_from
    facts = {
        "who": rng.choice(vocab["who"]),
        "event": rng.choice(vocab["event"]),
        "feeling": rng.choice(sorted(feelings)),
        "question": rng.choice(vocab["question"]),
    }
    details = rng.sample(filler, k=min(n_filler, len(filler)))
    body: list[tuple[str, float]] = [(d + ".", pol) for d, pol in details]
    # The opener comes first or after one detail; feeling and question go anywhere after it;
    # the question tends to end the post, as on Reddit.
    head = [(_fill(rng.choice(openers), facts), 0.0)]
    feeling_line = (_fill(rng.choice(feel_lines), facts), feelings[facts["feeling"]])
    question_line = (_fill(rng.choice(q_lines), facts), 0.0)
    k = rng.randint(0, min(1, len(body)))
    sentences = body[:k] + head
    rest = body[k:] + [feeling_line]
    rng.shuffle(rest)
    sentences += rest
    if rng.random() < 0.8:
        sentences.append(question_line)
    else:
        sentences.insert(rng.randint(k + 1, len(sentences)), question_line)
    text = " ".join(s for s, _ in sentences)
    polar = [p for _, p in sentences]
    sentiment = sum(polar) / len(polar)
    title = "" if domain == "news" else _fill(rng.choice(TITLES), facts)
    return Post(post_id, domain, topic, facts, text, round(sentiment, 4), title)


# --------------------------------------------------------------------------------------------
# References, corruptions and the gold reward
# --------------------------------------------------------------------------------------------


def reference_summary(rng: random.Random, post: Post, p_incomplete: float) -> str:
    if post.domain == "news":
        complete, incomplete = NEWS_SUMMARY_FORMS_COMPLETE, NEWS_SUMMARY_FORMS_INCOMPLETE
    else:
        complete, incomplete = SUMMARY_FORMS_COMPLETE, SUMMARY_FORMS_INCOMPLETE
    forms = incomplete if rng.random() < p_incomplete else complete
    text = rng.choice(forms).format(**post.facts)
    return text.lower() if rng.random() < 0.7 else _cap(text)


@dataclass(frozen=True)
class GoldRewardWeights:
    """Weights of the gold reward. Coverage sums to 1 for a complete summary."""

    who: float = 0.25
    event: float = 0.35
    feeling: float = 0.2
    question: float = 0.2
    invented_penalty: float = 0.5  # per fact phrase the post does not assert
    free_words: int = 10  # words allowed before the length penalty starts
    length_penalty: float = 0.02  # per word beyond free_words


def gold_reward(prompt: str, summary: str, weights: GoldRewardWeights = GoldRewardWeights()) -> float:
    """Score `summary` against the facts asserted in `prompt`.

    coverage (weighted share of the post's key facts mentioned) − invented_penalty × (distinct
    fact phrases the post does not assert) − length_penalty × max(0, words − free_words).
    """
    post_facts = set(find_facts(prompt))
    said = set(find_facts(summary))
    coverage = sum(getattr(weights, _PHRASE_SLOT[p]) for p in said & post_facts)
    invented = len(said - post_facts)
    n = len(words(summary))
    return coverage - weights.invented_penalty * invented - weights.length_penalty * max(
        0, n - weights.free_words
    )


def corrupt(rng: random.Random, post: Post, summary: str, kind: str) -> str:
    """Damage a summary the way bad summaries go wrong: drop a fact, invent one, pad it."""
    facts = {k: v.lower() for k, v in post.facts.items()}
    present = [p for p in find_facts(summary) if p in facts.values()]
    if kind == "drop":
        if not present:
            return summary
        victim = rng.choice(present)
        out = summary.replace(victim, "", 1) if victim in summary else normalise(summary).replace(victim, "", 1)
        return re.sub(r"\s+", " ", out).strip()
    if kind == "invent":
        slot = rng.choice([s for s in SLOTS if facts[s] in normalise(summary)] or list(SLOTS))
        pool = sorted(p.lower() for p in _VOCAB[slot] - {post.facts[slot]})
        other = rng.choice(pool)
        if facts[slot] in summary:
            return summary.replace(facts[slot], other, 1)
        return f"{summary} {other}."
    if kind == "pad":
        filler = NEWS_FILLER if post.domain == "news" else FILLER
        extra = rng.choice(filler)[0].lower()
        return f"{summary} {extra}."
    raise ValueError(f"unknown corruption kind {kind!r}; use drop, invent or pad")


def behaviour_summary(rng: random.Random, post: Post) -> str:
    """A candidate summary of mixed quality, as a pool of earlier policies would produce.

    Preference pairs are drawn from these (Stiennon et al. collect comparisons of policy samples).
    """
    r = rng.random()
    if r < 0.15:  # a lazy "lead" summary: copy the first sentence or two of the post
        sents = re.split(r"(?<=[.?!])\s+", post.text)
        return " ".join(sents[: rng.randint(1, 2)]).lower()
    summary = reference_summary(rng, post, p_incomplete=0.4)
    for kind, p in (("drop", 0.3), ("invent", 0.25), ("pad", 0.3), ("drop", 0.1)):
        if rng.random() < p:
            summary = corrupt(rng, post, summary, kind)
    return summary


def annotator_scale(gold_gaps: list[float], agreement: float) -> float:
    """Bradley–Terry temperature s so that mean σ(|Δgold| / s) equals `agreement`.

    Simulated annotators prefer A with probability σ((g_A − g_B)/s); the papers report ~70%
    inter-annotator agreement, so we calibrate s on the very pairs being labelled.
    """
    gaps = [abs(g) for g in gold_gaps if g != 0]
    if not gaps:
        raise ValueError("all preference pairs have equal gold reward; cannot calibrate annotators")
    if not 0.5 < agreement < 1.0:
        raise ValueError(f"annotator agreement must lie in (0.5, 1), got {agreement}")

    def mean_agree(s: float) -> float:
        return sum(1.0 / (1.0 + math.exp(-g / s)) for g in gaps) / len(gaps)

    lo, hi = 1e-4, 1e3  # mean_agree falls as s grows
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        if mean_agree(mid) > agreement:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def annotate(rng: random.Random, gold_a: float, gold_b: float, scale: float) -> bool:
    """True when the simulated annotator prefers A."""
    p = sigmoid((gold_a - gold_b) / scale)
    return rng.random() < p
