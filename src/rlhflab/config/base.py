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


def http_url_problem(url: str) -> str | None:
    """Why `url` cannot be an HTTP endpoint's base URL, or None (a URL without a scheme would only
    fail at the first request, after the run's training)."""
    from urllib.parse import urlparse

    parts = urlparse(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return (f"{url!r} is not an http(s) URL; write it whole, e.g. http://localhost:8000/v1 or "
                "https://api.openai.com/v1")
    return None
