"""The one HTTP client for OpenAI-compatible chat endpoints: both the LLM judges
(`rlhflab.evaluation.judges`) and prompt tagging (`rlhflab.prompt_tags`) call it, so the
data layer need not import the evaluation layer. Retries stay with the callers; what went wrong,
and what to do about it, is decided here once (`EndpointError`)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request


class EndpointError(RuntimeError):
    """A request that got no usable reply: the URL, the HTTP status (None when no server answered),
    the server's own message, and `cause`, which decides whether a retry can help and what to advise."""

    # cause -> (retrying can help, what the user should do); {key}: the settings' names, filled in by `advice`
    ADVICE = {
        "unreachable": (True, "no server answers at {url}: start it, or fix {base_url}"),
        "timeout": (True, "the server did not answer in time: rerun later, or raise {timeout}"),
        "auth": (False, "the server refused the key: put a valid one in ${key_env} ({api_key_env})"),
        "no_key": (False, "the server wants a key and ${key_env} ({api_key_env}) is not set: export it"),
        "not_found": (False, "nothing at {url}: check {base_url} (it usually ends in /v1) and {model}"),
        "bad_request": (False, "the server rejected the request: check {model} and the message above"),
        "rate_limit": (True, "rate-limited: rerun later, or lower {concurrency}"),
        "server": (True, "the server failed: rerun later"),
        "reply": (True, "the reply is not a chat completion: check that {base_url} is an OpenAI-compatible API"),
    }

    def __init__(self, url: str, cause: str, status: int | None = None, message: str = "", key_set: bool = True):
        self.url, self.status, self.message = url, status, message
        self.cause = "no_key" if cause == "auth" and not key_set else cause
        if status is not None:
            text = f"HTTP {status} from {url}" + (f": {message}" if message else "")
        elif self.cause == "timeout":
            text = f"no answer from {url} in time"
        else:
            text = f"{'could not connect to' if self.cause == 'unreachable' else 'bad reply from'} {url} ({message})"
        super().__init__(text)

    @property
    def retryable(self) -> bool:
        return self.ADVICE[self.cause][0]

    def advice(self, section: str, key_env: str) -> str:
        """What to do, naming the config keys of `section` (e.g. eval.openai), or with section "--" the
        command's options (--base-url)."""
        keys = {k: f"--{k.replace('_', '-')}" if section == "--" else f"{section}.{k}"
                for k in ("base_url", "model", "timeout", "concurrency", "api_key_env")}
        return self.ADVICE[self.cause][1].format(url=self.url, key_env=key_env, **keys)


def _server_message(e: urllib.error.HTTPError) -> str:
    """The error text an OpenAI-compatible server sends ({"error": {"message": ...}}), else the body's start."""
    try:
        body = e.read(20_000).decode("utf-8", "replace")
    except OSError:
        return e.reason or ""
    try:
        payload = json.loads(body)
        err = payload.get("error") if isinstance(payload, dict) else None
        text = err.get("message") if isinstance(err, dict) else err if isinstance(err, str) else None
        text = text or (payload.get("message") if isinstance(payload, dict) else None)
    except json.JSONDecodeError:
        text = None
    text = " ".join(str(text or body or e.reason or "").split())
    return text[:300] + ("…" if len(text) > 300 else "")


def _http_cause(status: int) -> str:
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limit"
    return "server" if status >= 500 else "bad_request"


def chat_completion(base_url: str, model: str, api_key: str, messages: list[dict], *, temperature: float,
                    max_tokens: int, timeout: float) -> str:
    """One reply from an OpenAI-compatible `/chat/completions` endpoint; EndpointError otherwise.
    Without a key no Authorization header is sent (a local server needs none; an empty bearer
    token would only earn a 401 that hides the missing key)."""
    url = f"{base_url.rstrip('/')}/chat/completions"
    body = json.dumps({"model": model, "temperature": temperature, "max_tokens": max_tokens,
                       "messages": messages}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.loads(resp.read(1_000_000))
        return payload["choices"][0]["message"]["content"]
    except urllib.error.HTTPError as e:
        raise EndpointError(url, _http_cause(e.code), e.code, _server_message(e), key_set=bool(api_key)) from None
    except (TimeoutError, socket.timeout) as e:
        raise EndpointError(url, "timeout") from None
    except urllib.error.URLError as e:
        timed_out = isinstance(e.reason, (TimeoutError, socket.timeout))
        raise EndpointError(url, "timeout" if timed_out else "unreachable", message=str(e.reason)) from None
    except (ConnectionError, OSError) as e:
        raise EndpointError(url, "unreachable", message=str(e)) from None
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, UnicodeDecodeError) as e:
        raise EndpointError(url, "reply", message=f"{type(e).__name__}: {e}") from None
