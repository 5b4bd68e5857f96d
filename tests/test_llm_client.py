"""Errors from an OpenAI-compatible endpoint name the URL, the status, the server's own message and
what to do, by cause; no key is sent as an empty bearer token; a base URL without a scheme is a
config error."""

import json
import socket
from http.server import BaseHTTPRequestHandler

import pytest
from typer.testing import CliRunner

from rlhflab.config import ConfigError, load_config
from rlhflab.evaluation.annotations import JudgeUnavailable, judge_pairs
from rlhflab.evaluation.judges import OpenAIJudge
from rlhflab.llm_client import EndpointError, chat_completion
from helpers import send_json, serving

SEEN: list[dict] = []


class Refusing(BaseHTTPRequestHandler):
    """401 with OpenAI's error body, 404 for another path, 400 for an unknown model."""

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SEEN.append({"auth": self.headers.get("Authorization"), "path": self.path})
        if not self.path.startswith("/v1/"):
            status, reply = 404, {"detail": "Not Found"}
        elif body["model"] == "no-such-model":
            status, reply = 400, {"error": {"message": "The model `no-such-model` does not exist"}}
        else:
            status, reply = 401, {"error": {"message": "Incorrect API key provided: sk-wrong",
                                            "type": "invalid_request_error"}}
        send_json(self, status, reply)


@pytest.fixture(scope="module")
def server():
    yield from serving(Refusing, "")


def _ask(base_url, key="", model="judge"):
    with pytest.raises(EndpointError) as e:
        chat_completion(base_url, model, key, [{"role": "user", "content": "hi"}], temperature=0, max_tokens=5,
                        timeout=5)
    return e.value


def test_each_cause_names_the_url_the_status_the_servers_message_and_the_fix(server):
    refused = _ask(f"{server}/v1", key="sk-wrong")
    assert str(refused) == (f"HTTP 401 from {server}/v1/chat/completions: Incorrect API key provided: sk-wrong")
    assert refused.cause == "auth" and not refused.retryable
    assert refused.advice("eval.openai", "OPENAI_API_KEY") == (
        "the server refused the key: put a valid one in $OPENAI_API_KEY (eval.openai.api_key_env)")
    missing = _ask(f"{server}/v1")
    assert missing.cause == "no_key" and missing.advice("eval.openai", "MY_KEY") == (
        "the server wants a key and $MY_KEY (eval.openai.api_key_env) is not set: export it")
    assert SEEN[-1]["auth"] is None and SEEN[-2]["auth"] == "Bearer sk-wrong"  # no empty bearer token
    wrong_path = _ask(server)
    assert wrong_path.cause == "not_found" and wrong_path.status == 404 and "Not Found" in str(wrong_path)
    assert wrong_path.advice("eval.openai", "K") == (
        f"nothing at {server}/chat/completions: check eval.openai.base_url (it usually ends in /v1) and "
        "eval.openai.model")
    model = _ask(f"{server}/v1", key="k", model="no-such-model")
    assert model.cause == "bad_request" and "The model `no-such-model` does not exist" in str(model)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = _ask(f"http://127.0.0.1:{port}/v1")
    assert down.cause == "unreachable" and down.retryable
    assert str(down).startswith(f"could not connect to http://127.0.0.1:{port}/v1/chat/completions (")
    assert down.advice("--", "K") == f"no server answers at http://127.0.0.1:{port}/v1/chat/completions: start it, " \
                                     "or fix --base-url"


def test_a_refused_key_stops_eval_at_once_with_the_cause_and_the_fix(server, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-wrong")
    judge = OpenAIJudge(base_url=f"{server}/v1", model="judge", api_key_env="JUDGE_KEY", max_retries=3, backoff=0.01)
    before = len(SEEN)
    with pytest.raises(JudgeUnavailable) as e:
        judge_pairs(judge, ["p1", "p2"], ["a", "b"], ["c", "d"])
    assert len(SEEN) - before == 2  # one request per pair: a refused key is not retried
    assert str(e.value).startswith(
        f"the judge stopped answering (HTTP 401 from {server}/v1/chat/completions: Incorrect API key provided: "
        "sk-wrong; the server refused the key: put a valid one in $JUDGE_KEY (eval.openai.api_key_env), 2 of the "
        "last 2 pairs)")


def test_a_base_url_without_a_scheme_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"eval\.openai\.base_url: 'localhost:8000/v1' is not an http\(s\) URL; "
                                          r"write it whole, e\.g\. http://localhost:8000/v1"):
        load_config("quickstart", ["eval.openai.base_url=localhost:8000/v1"])
    from rlhflab.cli import app

    f = tmp_path / "p.jsonl"
    f.write_text('{"id": "1", "prompt": "hi"}\n')
    res = CliRunner().invoke(app, ["prompts", "tag", str(f), "--out", str(tmp_path / "o.jsonl"), "--model", "m",
                                   "--base-url", "localhost:8000/v1"])
    assert res.exit_code == 1 and "--base-url: 'localhost:8000/v1' is not an http(s) URL" in res.output
