"""Vocabularies of the embedded synthetic summarisation task (data only; rlhflab.data.synthetic
renders posts, references and the gold reward from them).

Phrases in WHO / EVENT / QUESTION / FEELING are the "facts"; they must be unique across the whole
task, must not be substrings of one another, and no two side by side may form another phrase: the
graded topic-shift test sets put facts of different topics next to each other (all checked in tests).
"""

from __future__ import annotations

TOPICS: dict[str, dict[str, list[str]]] = {
    "relationships": {
        "who": ["my girlfriend", "my boyfriend", "my wife", "my husband", "my fiance"],
        "event": ["forgot our anniversary", "read my private messages", "cancelled our holiday",
                  "lied about an old flame", "wants to move in together", "proposed at dinner"],
        "question": ["should I end things", "how do I bring it up", "am I overreacting",
                     "should I forgive this"],
    },
    "family": {
        "who": ["my mother", "my father", "my sister", "my brother", "my grandmother"],
        "event": ["skipped my graduation", "sold the family house", "announced a new baby",
                  "borrowed my car without asking", "invited my ex to the wedding"],
        "question": ["how do I talk to them", "should I say something", "is this normal"],
    },
    "work": {
        "who": ["my boss", "my manager", "a coworker", "my team lead", "the new intern"],
        "event": ["took credit for my project", "cut my hours", "gave me a promotion",
                  "scheduled meetings every weekend", "shared my salary with everyone"],
        "question": ["should I quit", "do I go to human resources", "how do I ask for a raise"],
    },
    "pets": {
        "who": ["my dog", "my cat", "my parrot", "my rabbit", "the puppy"],
        "event": ["chewed through the sofa", "stopped eating dinner", "escaped into the garden",
                  "learned to open doors", "bit the neighbour"],
        "question": ["should I see a vet", "how do I train this", "is this a bad sign"],
    },
    "money": {
        "who": ["my landlord", "my roommate", "my bank", "my accountant", "my flatmate"],
        "event": ["raised the rent again", "never paid the bills", "froze my account",
                  "kept my deposit", "charged me twice"],
        "question": ["can I get a refund", "should I take legal action", "how do I budget now"],
    },
    "school": {
        "who": ["my teacher", "my professor", "my tutor", "a classmate", "my lab partner"],
        "event": ["failed my essay", "copied my homework", "changed the exam date",
                  "praised my thesis", "lost my report"],
        "question": ["should I appeal the grade", "do I tell the dean", "how do I catch up"],
    },
}

NEWS: dict[str, list[str]] = {
    "who": ["the city council", "a local hospital", "the transport minister", "a football club",
            "the school board", "a tech company"],
    "event": ["approved a new budget", "closed the main bridge", "announced record profits",
              "delayed the election", "banned cars downtown", "opened a new stadium"],
    "question": ["whether the plan will go ahead", "who will pay for it",
                 "when the work will finish"],
}

FEELINGS: dict[str, float] = {  # phrase -> polarity in [-1, 1]
    "furious": -1.0, "heartbroken": -0.9, "anxious": -0.6, "embarrassed": -0.5, "confused": -0.3,
    "jealous": -0.5, "nervous": -0.4, "relieved": 0.5, "grateful": 0.8, "thrilled": 1.0,
    "hopeful": 0.6, "proud": 0.7,
}
NEWS_FEELINGS: dict[str, float] = {  # how residents react
    "outraged": -0.9, "worried": -0.6, "divided": -0.2, "pleased": 0.6, "delighted": 0.9,
}

# Irrelevant detail: sentences that assert no fact. Each carries a polarity so posts vary in
# sentiment independently of their facts.
FILLER: list[tuple[str, float]] = [
    ("It was raining all day and the streets were grey", -0.3),
    ("The weather was lovely and sunny that morning", 0.6),
    ("I had a terrible cold the whole week", -0.6),
    ("We had a wonderful lunch by the river", 0.8),
    ("I live in a small town near the coast", 0.0),
    ("I am in my late twenties if that matters", 0.0),
    ("The traffic on the way home was awful", -0.7),
    ("My phone battery died twice that evening", -0.3),
    ("I just started a great new hobby", 0.7),
    ("The coffee at the station tasted bitter", -0.4),
    ("Our garden finally looks beautiful", 0.8),
    ("I slept badly and woke up tired", -0.5),
    ("My neighbours are always friendly and kind", 0.6),
    ("The flat has a leaky tap in the kitchen", -0.3),
    ("I watched a brilliant film last night", 0.7),
    ("It has been a long and boring month", -0.5),
    ("Sorry for the formatting since I am on mobile", 0.0),
    ("This is a throwaway account for obvious reasons", 0.0),
    ("Long time reader and first time poster", 0.1),
    ("Things had been going really well before this", 0.6),
]
NEWS_FILLER: list[tuple[str, float]] = [
    ("The announcement came late on Tuesday afternoon", 0.0),
    ("Crowds gathered outside in the cold rain", -0.3),
    ("The mayor praised the hard work of local staff", 0.6),
    ("Critics called the process slow and messy", -0.6),
    ("The area has seen strong growth in recent years", 0.6),
    ("Local shops reported a difficult winter", -0.5),
    ("A spokesperson declined to comment further", 0.0),
    ("The decision follows months of public debate", 0.0),
]

# Reddit titles restate the gist (Stiennon et al.'s TL;DR prompts carry TITLE); news has none.
TITLES = [
    "{who} {event}",
    "{Who} {event} and I need advice",
    "Need advice: {who} {event}",
    "{who} {event}, what now",
]
POST_OPENERS = [
    "So {who} {event} last week.",
    "Yesterday {who} {event}.",
    "Long story short, {who} {event}.",
    "I found out that {who} {event}.",
]
POST_FEELINGS = [
    "I feel {feeling} about it.",
    "Honestly I am {feeling} right now.",
    "I have been {feeling} ever since.",
]
POST_QUESTIONS = [
    "So my question is, {question}?",
    "{Question}?",
    "Please help, {question}?",
]
NEWS_OPENERS = [
    "Officials confirmed on Monday that {who} {event}.",
    "In a surprise move {who} {event}.",
    "Reports say {who} {event}.",
]
NEWS_FEELING_LINES = [
    "Residents said they were {feeling} by the news.",
    "Many locals were {feeling} after the decision.",
]
NEWS_QUESTION_LINES = [
    "It is still unclear {question}.",
    "Nobody has said {question}.",
]

# Reference summaries: complete and incomplete paraphrase forms, as TL;DR authors write them.
SUMMARY_FORMS_COMPLETE = [
    "{who} {event} and I feel {feeling}. {question}?",
    "{who} {event}, now I am {feeling}. {question}?",
    "I am {feeling} because {who} {event}. {question}?",
    "{who} {event}. I am {feeling}, {question}?",
]
SUMMARY_FORMS_INCOMPLETE = [
    "{who} {event}. {question}?",
    "{who} {event} and I feel {feeling}.",
    "{who} {event}, {question}?",
]
NEWS_SUMMARY_FORMS_COMPLETE = [
    "{who} {event} and residents are {feeling}. unclear {question}.",
    "{who} {event}, locals {feeling}. still unclear {question}.",
]
NEWS_SUMMARY_FORMS_INCOMPLETE = [
    "{who} {event}.",
    "{who} {event}, unclear {question}.",
]
