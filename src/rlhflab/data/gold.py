"""Gold rewards by name: tasks whose data declares one ("gold_reward" in task.json) get a judge
that stands in for human judgement."""

from __future__ import annotations

from typing import Callable

GoldReward = Callable[[str, str], float]


def get_gold_reward(name: str | None) -> GoldReward | None:
    if name is None:
        return None
    if name == "synthetic-tldr":
        from rlhflab.data.synthetic import gold_reward

        return gold_reward
    raise ValueError(f"unknown gold reward {name!r}; known: synthetic-tldr")
