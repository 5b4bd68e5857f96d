"""Prompt tagging (ivison2024 appendix J, figure 5) and tag-mixed prompt sets."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlhflab.prompt_tags import (TAG_PROMPT, ChatTagger, LocalTagger, TagReplyError, build_prompt_set,
                                      parse_tags, tag_prompts)
from rlhflab.data.records import PromptRecord


def test_parse_tags_reads_the_json_object_only():
    assert parse_tags('{"tags": ["Coding", "Math"]}') == ["Coding", "Math"]
    assert parse_tags("'''\n{\n    \"tags\": [\"math\", \"Nonsense\", \"Math\"]\n}\n'''") == ["Math"]
    assert parse_tags('Sure! ```json\n{"tags": ["Asking for Advice"]}\n```') == ["Asking for Advice"]
    for bad in ("Coding, Math", '{"tags": ["Cooking"]}', '{"tags": [Coding]}', ""):
        with pytest.raises(TagReplyError):
            parse_tags(bad)


def test_prompt_is_figure_5_with_the_instruction():
    text = TAG_PROMPT.format(instruction="Sort this list in Python")
    assert "## User Query\n'''\nSort this list in Python\n'''" in text
    assert '"tags": ["[tag 1]", "[tag 2]", ... ]' in text and '"Inhabiting a Character/Persona"' in text


class Tagging(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        query = body["messages"][0]["content"].split("'''")[1].strip()
        reply = {"Write a Python function to add two numbers": '{"tags": ["Coding"]}',
                 "Solve 2x + 3 = 7": '{"tags": ["Math", "Closed Question Answering"]}',
                 "Écris un poème": '{"tags": ["Creative Writing", "Multilingual"]}',
                 "asdf": "I cannot tag this."}[query]
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_chat_tagger_tags_and_records_unreadable_replies():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Tagging)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        tagger = ChatTagger(base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1", model="m", backoff=0.0)
        recs = [PromptRecord(q) for q in ("Write a Python function to add two numbers", "Solve 2x + 3 = 7",
                                          "Écris un poème", "asdf")]
        tagged, summary = tag_prompts(recs, tagger)
    finally:
        srv.shutdown()
    assert [r.meta.get("tags") for r in tagged] == [["Coding"], ["Math", "Closed Question Answering"],
                                                    ["Creative Writing", "Multilingual"], None]
    assert "no {" in tagged[3].meta["tag_error"] and summary["unreadable"] == 1 and summary["tag_counts"]["Math"] == 1


def test_local_tagger_runs_a_model_and_reports_unreadable_output():
    import torch

    from rlhflab.config import ModelSpec
    from rlhflab.models import build_llama, train_tokenizer

    tok = train_tokenizer(["the cat sat on the mat"] * 50, vocab_size=300)
    torch.manual_seed(0)
    model = build_llama(ModelSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2,
                                  intermediate_size=64), tok)
    tagged, summary = tag_prompts([PromptRecord("Sort a list")], LocalTagger(model, tok, "random", max_new_tokens=8))
    # An untrained model cannot produce the JSON object: the record says so instead of failing.
    assert summary["unreadable"] == 1 and "tag_error" in tagged[0].meta


def rec(i, tags):
    return PromptRecord(f"p{i}", id=str(i), meta={"tags": tags})


def test_prompt_set_prefers_prompts_with_fewest_other_tags():
    recs = [rec(0, ["Coding", "Math", "Brainstorming"]), rec(1, ["Coding"]), rec(2, ["Math"]),
            rec(3, ["Coding", "Math"]), rec(4, ["Coding", "Unclear"]), rec(5, ["Rewriting"]),
            rec(6, ["Math", "Multilingual"]), rec(7, ["Summarization"])]
    out = build_prompt_set(recs, {"Coding": 2, "Math": 2, "any": 2}, seed=0)
    buckets = {r.id: r.meta["bucket"] for r in out}
    # Coding: p1 (only Coding), then p3 (2 tags) before p0 (3 tags); p4 is Unclear.
    assert [r.id for r in out if r.meta["bucket"] == "Coding"] == ["1", "3"]
    # Math: p2, then p0 (p3 already used; p6 is multilingual).
    assert [r.id for r in out if r.meta["bucket"] == "Math"] == ["2", "0"]
    assert {k for k, v in buckets.items() if v == "any"} == {"5", "7"}
    assert len(set(buckets)) == 6
    with pytest.raises(ValueError, match="4 prompts wanted for 'Math' but only 3"):
        build_prompt_set(recs, {"Math": 4})
    with pytest.raises(ValueError, match="unknown tag"):
        build_prompt_set(recs, {"Cooking": 1})


def test_cli_convert_tag_mix(tmp_path):
    from typer.testing import CliRunner

    from rlhflab.cli import app
    from rlhflab.data.records import read_records, write_jsonl

    runner = CliRunner()
    fix = "tests/fixtures/sources/alpaca_eval.jsonl"
    res = runner.invoke(app, ["data", "convert", "alpaca_eval", "prompt", "--path", fix, "--out", str(tmp_path / "p.jsonl")])
    assert res.exit_code == 0, res.output
    recs = read_records(tmp_path / "p.jsonl", PromptRecord)
    assert recs[0].prompt.startswith("<|user|>\nWhat are the names") and recs[0].reference
    tagged = [rec(i, t) for i, t in enumerate([["Math"], ["Coding"], ["Math", "Coding"], ["Rewriting"]])]
    write_jsonl(tmp_path / "t.jsonl", tagged)
    res = runner.invoke(app, ["prompts", "mix", str(tmp_path / "t.jsonl"), "--mix", "Math=2", "--mix", "any=1",
                              "--out", str(tmp_path / "m.jsonl")])
    assert res.exit_code == 0, res.output
    assert [r.meta["bucket"] for r in read_records(tmp_path / "m.jsonl", PromptRecord)] == ["Math", "Math", "any"]
    res = runner.invoke(app, ["prompts", "mix", str(tmp_path / "t.jsonl"), "--mix", "Math", "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "TAG=COUNT" in res.output
    res = runner.invoke(app, ["data", "convert", "hh_rlhf", "sft", "--path", fix, "--out", str(tmp_path / "y.jsonl")])
    assert res.exit_code == 1 and "not sft" in res.output and not (tmp_path / "y.jsonl").exists()
