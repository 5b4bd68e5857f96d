"""The base of every config section, and the error a bad config raises."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A config could not be read or validated. The message names the key and the fix."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Every policy the study can evaluate: sft, best-of-N over SFT samples, and one per training stage.
Policy = Literal["sft", "bon", "ppo", "dpo", "grpo", "rloo", "online_dpo"]
TrainedPolicy = Literal["sft", "ppo", "dpo", "grpo", "rloo", "online_dpo"]  # those with a saved model
