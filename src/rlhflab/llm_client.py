"""The one HTTP client for OpenAI-compatible chat endpoints: both the LLM judges
(`rlhflab.evaluation.judges`) and prompt tagging (`rlhflab.prompt_tags`) call it, so the
data layer need not import the evaluation layer. Retries and error policy stay with the callers."""

from __future__ import annotations

import json
import urllib.request


def chat_completion(base_url: str, model: str, api_key: str, messages: list[dict], *, temperature: float,
                    max_tokens: int, timeout: float) -> str:
    """One reply from an OpenAI-compatible `/chat/completions` endpoint."""
    body = json.dumps({"model": model, "temperature": temperature, "max_tokens": max_tokens,
                       "messages": messages}).encode()
    req = urllib.request.Request(f"{base_url.rstrip('/')}/chat/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        payload = json.loads(resp.read(1_000_000))
    return payload["choices"][0]["message"]["content"]
