"""The `datasets` task: sources -> rendered, split records in the data stage's layout -> stages."""

import json
import random
import re
from pathlib import Path

import pytest

from conftest import TINY
from rlhflab.config import ConfigError, load_config
from rlhflab.contamination import ContaminationError
from rlhflab.layout import Layout
from rlhflab.data.chat import render, render_records, tulu
from rlhflab.data.records import PreferenceRecord, PromptRecord, SFTRecord, read_json, read_records
from rlhflab.data.sources import load_source
from rlhflab.pipeline import run_pipeline
from rlhflab.stages import REGISTRY
from rlhflab.tasks.datasets import record_domain

FIX = Path(__file__).parent / "fixtures" / "sources"
WORDS = ("dog cat job rent boss friend sister car loan trip house school exam money phone game "
         "happy sad angry great awful love hate calm").split()


def _post(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


def _tldr_rows(rng, n, prefix):
    """n posts of 5-60 words as TL;DR rows and as summarize-from-feedback comparisons."""
    tldr, sff = [], []
    for i in range(n):
        post = _post(rng, rng.randint(5, 60))
        sub = rng.choice(["relationships", "jobs"])
        tldr.append({"id": f"{prefix}{i}", "subreddit": sub, "title": f"post {i}", "post": post,
                     "summary": " ".join(post.split()[:4])})
        sff.append({"info": {"id": f"{prefix}{i}", "post": post, "title": f"post {i}", "subreddit": sub},
                    "summaries": [{"text": " " + " ".join(post.split()[:4]), "policy": "ref"},
                                  {"text": " " + _post(rng, 4), "policy": "sup"}],
                    "choice": 0, "extra": {"confidence": 5}})
    return tldr, sff


def _cnn_rows(rng, n):
    return [{"id": f"c{i}", "article": _post(rng, rng.randint(20, 80)), "highlights": _post(rng, 6)} for i in range(n)]


def _write_rows(tmp_path, sets: dict) -> dict:
    paths = {}
    for name, rows in sets.items():
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def write_tldr_like(tmp_path, n=120, seed=0):
    """Rows in the TL;DR, summarize-from-feedback and CNN/DM schemas, posts of 5-60 words; the test
    rows (tldr_test, sff_test) are other posts than the training rows (tldr, sff)."""
    rng = random.Random(seed)
    tldr, sff = _tldr_rows(rng, n, "t")
    cnn = _cnn_rows(rng, n)
    tldr_test, sff_test = _tldr_rows(rng, n // 2, "x")
    return _write_rows(tmp_path, {"tldr": tldr, "sff": sff, "cnn": cnn, "tldr_test": tldr_test, "sff_test": sff_test})


def write_tldr_splits(tmp_path, seed=0):
    """The real data's shape: TL;DR train / validation / test posts; comparisons (two per post) on
    the train posts (train split) and on the validation and test posts and some CNN/DM test articles
    (validation split), as Stiennon et al.'s summarize_from_feedback has them."""
    rng = random.Random(seed)
    train, sff_train = _tldr_rows(rng, 80, "tr")
    val, sff_val = _tldr_rows(rng, 40, "va")
    test, sff_test = _tldr_rows(rng, 40, "te")
    cnn = _cnn_rows(rng, 40)
    news = [{"info": {"id": c["id"], "article": c["article"], "site": "cnn"},
             "summaries": [{"text": " " + c["highlights"], "policy": "ref"}, {"text": " " + _post(rng, 3), "policy": "sup"}],
             "choice": 0} for c in cnn[:10]]
    return _write_rows(tmp_path, {"tldr_train": train, "tldr_validation": val, "tldr_test": test, "cnn_test": cnn,
                                  "sff_train": sff_train * 2, "sff_validation": (sff_val + sff_test) * 2 + news})


def datasets_config(tmp_path, paths, extra=(), news: str = "id"):
    task = {"kind": "datasets",
            "sft_train": {"source": "tldr", "path": str(paths["tldr"])},
            "preference_train": {"source": "summarize_from_feedback", "path": str(paths["sff"])},
            "test_sets": {"id": {"source": "tldr", "path": str(paths["tldr_test"]), "limit": 40, "distribution": "id"},
                          "news": {"source": "cnn_dailymail", "path": str(paths["cnn"]), "limit": 20,
                                   "distribution": news}},
            "preference_tests": {"id": {"source": "summarize_from_feedback", "path": str(paths["sff_test"]),
                                        "limit": 40, "distribution": "id"}},
            "ood_split": {"by": "length"}}
    cfg = tmp_path / "real.yaml"
    cfg.write_text(json.dumps({"name": "real", "output_dir": str(tmp_path / "runs"), "task": task,
                               "comparisons": {"source": "task"}, "eval": {"judge": "rm_proxy"}}))
    keep = [o for o in TINY if not o.startswith("task.")]
    return load_config(cfg, keep + ["diversity.metrics=[ead,sentence_bert]", "pretrain.optim.epochs=2", *extra])


@pytest.mark.slow
def test_data_stage_splits_every_set_by_median_length(tmp_path):
    cfg = datasets_config(tmp_path, write_tldr_like(tmp_path))
    run_pipeline(cfg, REGISTRY, until="data")
    data = tmp_path / "runs" / "real" / "data"
    info = read_json(data / "task.json")
    rule = info["ood_split"]["rule"]
    assert rule["by"] == "length" and rule["fitted_on"] > 100
    threshold = rule["threshold"]
    train = read_records(data / "sft" / "train.jsonl", SFTRecord)
    assert all(len(r.meta["input"].split()) < threshold for r in train)
    ood = read_records(data / "test" / "ood_length.jsonl", PromptRecord)
    assert ood and all(len(r.meta["input"].split()) >= threshold for r in ood)
    # The CNN/DM test set, declared ID, splits into its own ID and OOD parts; each OOD part is
    # compared with the ID part it came from, whatever the names.
    layout = Layout.from_task_info(info)
    tests = {ds.name: ds for ds in layout.tests("prompt")}
    assert set(tests) == {"id", "ood_length", "news", "news_ood_length"}
    assert [n for n, ds in tests.items() if not ds.is_ood] == ["id", "news"]
    assert tests["ood_length"].compare_to == "id" and tests["news_ood_length"].compare_to == "news"
    assert tests["news_ood_length"].shift == "length"
    assert {ds.name for ds in layout.tests("preference")} == {"id", "ood_length"}
    # Sizes and medians are reported for every set; the ID median lies below the OOD one.
    s = info["ood_split"]["sets"]["sft/train"]
    assert s["n_id"] + s["n_ood"] > 100 and s["median_id"] < threshold <= s["median_ood"]
    # Validation was carved (5%) from the training data; prompts default to the SFT prompts.
    assert info["sizes"]["sft/validation.jsonl"] >= 1 and info["sizes"]["prompts/train.jsonl"] == len(train)
    assert (data / "pretrain" / "corpus.jsonl").exists()


@pytest.mark.slow
def test_a_declared_ood_set_stays_whole_under_a_split(tmp_path):
    cfg = datasets_config(tmp_path, write_tldr_like(tmp_path), news="ood")
    run_pipeline(cfg, REGISTRY, until="data")
    tests = {ds.name: ds for ds in Layout.from_task_info(read_json(tmp_path / "runs" / "real" / "data" / "task.json"))
             .tests("prompt")}
    assert set(tests) == {"id", "ood_length", "news"}
    assert tests["news"].is_ood and tests["news"].compare_to == "id"


@pytest.mark.slow
def test_pipeline_runs_on_a_datasets_task(tmp_path):
    cfg = datasets_config(tmp_path, write_tldr_like(tmp_path),
                          ["eval.policies=[sft,dpo]", "eval.baseline=sft", "dpo.optim.epochs=1"])
    results = {r.name: r for r in run_pipeline(cfg, REGISTRY, until="eval")}
    assert {"data", "pretrain", "sft", "rm_proxy", "dpo", "eval"} <= set(results)
    run = tmp_path / "runs" / "real"
    for stage in ("rm_eval",):
        run_pipeline(cfg, REGISTRY, until=stage)
    assert "ood_length" in json.dumps(read_json(run / "rm_eval" / "table.json"))
    res = read_json(run / "eval" / "results.json")
    # regression: the ID part of the news set is in distribution; it never enters the gaps
    assert res["sets"]["news"]["distribution"] == "id"
    for policy, gaps in res["gap"].items():
        assert set(gaps) == {"ood_length", "news_ood_length"}
        pvr = res["pvr"][policy]
        assert gaps["news_ood_length"] == pvr["news"]["win_rate"] - pvr["news_ood_length"]["win_rate"]
    from rlhflab.report import build_report

    build_report({s: run / s for s in ("data", "eval", "rm_eval")}, tmp_path / "report", "real")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Data and splits" in md and "| sft/train |" in md and "ID = length below the median" in md


@pytest.mark.slow
def test_chat_sources_use_tulu_without_a_model_template(tmp_path):
    task = {"kind": "datasets", "preference_train": {"source": "ultrafeedback_fine_grained",
                                                     "path": str(FIX / "ultrafeedback.jsonl")}}
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(json.dumps({"name": "uf", "output_dir": str(tmp_path / "runs"), "task": task,
                                    "comparisons": {"source": "task"}, "eval": {"judge": "rm"}}))
    cfg = load_config(cfg_path, ["diversity.metrics=[ead]"])
    run_pipeline(cfg, REGISTRY, until="data")
    data = tmp_path / "runs" / "uf" / "data"
    recs = read_records(data / "preference" / "train.jsonl", PreferenceRecord)
    recs += read_records(data / "preference" / "validation.jsonl", PreferenceRecord)
    assert {r.prompt for r in recs} == {"<|user|>\nExplain recursion to a child.\n<|assistant|>\n",
                                        "<|user|>\nIs 7 a prime number?\n<|assistant|>\n"}
    assert read_json(data / "task.json")["chat_template"] == "tulu"  # no model template: Tulu's


def test_render_with_a_tokenizer_template_and_plain():
    from rlhflab.models import train_tokenizer

    tok = train_tokenizer(["hello world"] * 20, vocab_size=300)
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, {"role": "user", "content": "Again"}]
    assert render(msgs, tok) == tulu(msgs) == "<|user|>\nHi\n<|assistant|>\nYo\n<|user|>\nAgain\n<|assistant|>\n"
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}[assistant] {% endif %}")
    # BOS written by the template is dropped: the tokenizer adds its own when encoding.
    assert render(msgs, tok) == "[user] Hi\n[assistant] Yo\n[user] Again\n[assistant] "
    assert render(msgs, tok, "tulu") == tulu(msgs)
    assert render(msgs[:1], tok, "none") == "Hi\n\n"


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "b.yaml"
    bad.write_text(json.dumps({"task": {"kind": "datasets", "sft_train": {"source": "tldr-typo"}},
                               "comparisons": {"source": "task"}, "eval": {"judge": "rm"}}))
    with pytest.raises(ConfigError, match="unknown source 'tldr-typo'"):
        load_config(bad)
    bad.write_text(json.dumps({"task": {"kind": "datasets", "sft_train": {"source": "tldr"}},
                               "comparisons": {"source": "task"}, "diversity": {"metrics": ["ead"]}}))
    with pytest.raises(ConfigError, match="eval.judge"):
        load_config(bad)
    bad.write_text(json.dumps({"task": {"kind": "datasets", "sft_train": {"source": "tldr"},
                                        "ood_split": {"by": "category"}},
                               "comparisons": {"source": "task"}, "eval": {"judge": "rm"}}))
    with pytest.raises(ConfigError, match="id_values"):
        load_config(bad)


# Every source of a built-in real-data config read from local rows instead of the hub: the TL;DR
# config from rows in the shape of the real splits, the AlpacaFarm config from the fixtures.
TLDR_ROWS = {"sft_train": "tldr_train", "sft_validation": "tldr_validation", "preference_train": "sff_train",
             "preference_validation": "sff_validation", "test_sets.id": "tldr_test", "test_sets.ood_news": "cnn_test",
             "preference_tests.id": "sff_validation", "preference_tests.ood_news": "sff_validation"}
ALPACAFARM_FIXTURES = {"sft_train": "alpaca_farm", "sft_validation": "alpaca_farm_validation",
                       "preference_train": "alpaca_farm_human_preference", "policy_prompts": "alpaca_farm",
                       "test_sets.id": "alpaca_farm_validation", "test_sets.ood_alpaca_eval": "alpaca_eval",
                       "test_sets.ood_sequential": "sequential_instructions"}


def builtin_config(name, tmp_path, extra=()):
    if name == "tldr":
        rows = write_tldr_splits(tmp_path)
        files = {k: rows[v] for k, v in TLDR_ROWS.items()}
    else:
        files = {k: FIX / f"{v}.jsonl" for k, v in ALPACAFARM_FIXTURES.items()}
    sets = [f"task.{k}.path={p}" for k, p in files.items()]
    return load_config(name, sets + [f"output_dir={tmp_path}", "model.gguf=null", *extra]), files


@pytest.mark.parametrize("name", ["tldr", "alpacafarm"])
def test_builtin_real_data_configs_build_their_data(tmp_path, name):
    cfg, files = builtin_config(name, tmp_path)
    run_pipeline(cfg, REGISTRY, until="data")
    data = tmp_path / name / "data"
    info = read_json(data / "task.json")
    tests = {ds.name for ds in Layout.from_task_info(info).tests("prompt")}
    assert tests == {k.split(".")[1] for k in files if k.startswith("test_sets.")}
    assert info["sizes"]["sft/train.jsonl"] >= 1 and info["sizes"]["preference/train.jsonl"] >= 1
    # No test input is in a training or validation set, and no ID test input in an OOD one.
    report = info["contamination"]["tests"]
    assert {t: sum(e["count"] for e in r["against"].values()) for t, r in report.items()} == {t: 0 for t in report}
    assert all(r["n"] > 0 for r in report.values())
    if name == "tldr":  # summarize_from_feedback's validation split: TL;DR posts for ID, CNN/DM for OOD
        domains = {f: {record_domain(r) for r in read_records(data / "preference" / f, PreferenceRecord)}
                   for f in ("validation.jsonl", "test_id.jsonl", "test_ood_news.jsonl")}
        assert domains == {"validation.jsonl": {"tldr"}, "test_id.jsonl": {"tldr"}, "test_ood_news.jsonl": {"news"}}
        ood = [ds for ds in Layout.from_task_info(info).tests("preference") if ds.is_ood]
        assert [(ds.name, ds.shift) for ds in ood] == [("ood_news", "domain")]
    if name == "alpacafarm":
        prompt = read_records(data / "test" / "id.jsonl", PromptRecord)[0].prompt
        assert prompt.startswith("<|user|>\n") and prompt.endswith("<|assistant|>\n")
        # The ID test set and the SFT validation set are the two halves of AlpacaFarm's val split.
        halves = [read_records(data / f, cls) for f, cls in (("test/id.jsonl", PromptRecord),
                                                               ("sft/validation.jsonl", SFTRecord))]
        assert sorted(len(h) for h in halves) == [4, 6]
        assert {r.prompt for h in halves for r in h} == {r.prompt for r in render_records(
            load_source("alpaca_farm", "prompt", path=files["sft_validation"]), None, "tulu")}


@pytest.mark.parametrize("name,ref,overlaps", [
    ("tldr", "preference_tests.id", "preference/test_id shares .* with (preference|sft)/validation"),
    ("tldr", "test_sets.id", "test/id shares .* with preference/validation"),
    ("alpacafarm", "test_sets.id", "test/id shares 4 of 10 inputs .* with sft/validation"),
])
def test_without_their_parts_the_builtin_configs_would_test_on_selection_data(tmp_path, name, ref, overlaps):
    cfg, _ = builtin_config(name, tmp_path, [f"task.{ref}.part=null"])
    with pytest.raises(ContaminationError, match=overlaps):
        run_pipeline(cfg, REGISTRY, until="data")
    assert not (tmp_path / name / "data").exists()


def test_a_test_set_drawn_from_the_training_rows_stops_the_run_naming_the_ids(tmp_path):
    paths = write_tldr_like(tmp_path)
    paths["tldr_test"] = paths["tldr"]  # the ID test set drawn from the SFT training rows
    with pytest.raises(ContaminationError) as e:
        run_pipeline(datasets_config(tmp_path, paths), REGISTRY, until="data")
    msg = str(e.value)
    assert re.search(r"test set test/id shares (\d+) of \1 inputs \(100.0%\) with sft/train", msg), msg
    # the first overlapping test records, and the training records with the same post (the same rows)
    assert re.search(r"first overlapping ids: (t\d+) \(= \1\), (t\d+) \(= \2\)", msg), msg
    assert not (tmp_path / "runs" / "real" / "data").exists()


@pytest.mark.slow
def test_editing_a_source_file_reruns_the_data_stage(tmp_path):
    import os

    paths = write_tldr_like(tmp_path)
    cfg = datasets_config(tmp_path, paths)
    first = {r.name: r.status for r in run_pipeline(cfg, REGISTRY, until="data")}
    again = {r.name: r.status for r in run_pipeline(cfg, REGISTRY, until="data")}
    assert first["data"] == "ran" and again["data"] == "cached"
    rows = paths["tldr"].read_text().splitlines()
    paths["tldr"].write_text("\n".join(rows[:-1]) + "\n")  # same config, one row fewer
    st = paths["tldr"].stat()
    os.utime(paths["tldr"], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    edited = {r.name: r.status for r in run_pipeline(cfg, REGISTRY, until="data")}
    assert edited["data"] == "ran"


def test_a_domain_keeps_one_summarisation_domain_before_the_limit(tmp_path):
    """summarize_from_feedback's validation split mixes Reddit posts and CNN/DM articles: `domain`
    keeps one of them, filtered before `limit` (so the limit counts only that domain's records)."""
    from rlhflab.config.tasks import DatasetRef
    from rlhflab.tasks.datasets import load_ref

    posts = [{"info": {"id": f"p{i}", "post": f"my dog chewed sofa number {i}", "subreddit": "pets"},
              "summaries": [{"text": " dog ate sofa"}, {"text": " sofa"}], "choice": 0} for i in range(6)]
    news = [{"info": {"id": f"n{i}", "article": f"the council approved budget number {i}", "site": "cnn"},
             "summaries": [{"text": " budget passed"}, {"text": " council"}], "choice": 1} for i in range(4)]
    path = tmp_path / "sff.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in posts + news))

    def ids(**kw):
        ref = DatasetRef(source="summarize_from_feedback", split="validation", path=path, **kw)
        return sorted(r.id for r in load_ref(ref, "preference", "preference/validation", 0))

    assert ids() == sorted([f"p{i}" for i in range(6)] + [f"n{i}" for i in range(4)])
    assert ids(domain="tldr") == [f"p{i}" for i in range(6)]
    assert ids(domain="news") == [f"n{i}" for i in range(4)]
    assert len(ids(domain="news", limit=3)) == 3 and all(i.startswith("n") for i in ids(domain="news", limit=3))
    tldr = tmp_path / "tldr.jsonl"
    tldr.write_text(json.dumps({"id": "t0", "post": "my boss cut my hours", "subreddit": "work", "title": "hours",
                                "summary": "boss cut hours"}) + "\n")
    with pytest.raises(ValueError, match="domain news of tldr"):
        load_ref(DatasetRef(source="tldr", split="validation", path=tldr, domain="news"), "sft", "sft/validation", 0)
    with pytest.raises(Exception, match="domain"):
        DatasetRef(source="tldr", domain="reddit")

