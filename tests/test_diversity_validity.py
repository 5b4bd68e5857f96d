"""The diversity validation protocol (Tevet & Berant 2021): its statistics against hand values, and
the content-vs-form sets really varying only what they claim to, by the ground-truth estimators."""

import dataclasses
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rlhflab.data.synthetic import delexicalise
from rlhflab.evaluation.diversity import Spread
from rlhflab.evaluation.diversity_validity import (auroc, average_ranks, clustered_spearman, condition_correlations,
                                                   content_vs_form, content_vs_form_sets, mean_correlations,
                                                   paraphrase_separation, read_paraphrase_sets, row_bootstrap,
                                                   separation, spearman, standardised_difference)
from rlhflab.evaluation.ground_truth_diversity import ground_truth_table


def test_spearman_by_hand():
    # ranks differ by 0, 1, 1, 0: ρ = 1 − 6·2 / (4·15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8, rel=1e-12)
    # ties share their mean rank: x ranks (1.5, 1.5, 3), centred (−½, −½, 1); y (−1, 0, 1): 1.5 / √(1.5·2)
    assert list(average_ranks([1, 1, 2])) == [1.5, 1.5, 3.0]
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2, rel=1e-12)
    assert spearman([1, 1, 2, math.nan], [1, 2, 3, 0]) == pytest.approx(math.sqrt(3) / 2, rel=1e-12)  # NaN pair dropped
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman([1], [2]))


def test_clustered_spearman_resamples_whole_inputs():
    x = np.array([[1.0, 2, 3], [4, 5, 6]])
    y = np.array([[1.0, 2, 3], [6, 5, 4]])
    full = 1 - 6 * 8 / (6 * 35)  # ranks of y over all cells differ from x's by 0,0,0,2,0,2
    draws = row_bootstrap(x, y, 200, np.random.default_rng(0))
    # a draw holds both inputs (ρ = full), input 0 twice (ρ = 1) or input 1 twice (ρ = −1): nothing else
    assert {round(d, 9) for d in draws} == {round(full, 9), 1.0, -1.0}
    st = clustered_spearman(x, y, resamples=400)
    assert st["estimate"] == pytest.approx(full) and (st["ci_low"], st["ci_high"]) == (-1.0, 1.0)
    assert st["n"] == 2
    with pytest.raises(ValueError):
        clustered_spearman(x, y[:, :2])


def test_auroc_and_standardised_difference_by_hand():
    assert auroc([3, 2], [1, 2]) == pytest.approx(3.5 / 4)  # 3>1, 3>2, 2>1 and one tie (½)
    assert auroc([1], [1]) == 0.5
    assert math.isnan(auroc([], [1]))
    # means 2 and 1, sample variances 2 and 2: d = 1 / √2
    assert standardised_difference([1, 3], [0, 2]) == pytest.approx(1 / math.sqrt(2))
    assert standardised_difference([1, 1], [0, 0]) == math.inf
    assert standardised_difference([1, 1], [1, 1]) == 0.0
    assert standardised_difference([0.1 + 0.2, 0.3], [0, 0]) == math.inf  # rounding is not spread
    s = separation([1, 3, math.nan], [0, 2])
    assert (s["content_mean"], s["form_mean"], s["n"]) == (2.0, 1.0, 4)
    assert s["auroc"] == pytest.approx(3 / 4)


def test_content_and_form_sets_vary_only_what_they_claim():
    n, k = 20, 3
    forms, contents = content_vs_form_sets(n, k, seed=3)
    f, c = ground_truth_table(forms, n, k, resamples=1), ground_truth_table(contents, n, k, resamples=1)
    # form sets: one fact set (content 0, one distinct set), every pair worded differently
    assert f["content"]["per_input"].values == [0.0] * n
    assert f["content_distinct"]["per_input"].values == [1.0] * n
    assert all(v > 0 for v in f["form"]["per_input"].values)
    assert all(len({tuple(delexicalise(t)) for t in forms[i * k:(i + 1) * k]}) == k for i in range(n))
    # content sets: no phrase shared (Jaccard distance 1 for every pair), one wording
    assert c["content"]["per_input"].values == [1.0] * n
    assert c["content_distinct"]["per_input"].values == [float(k)] * n
    assert all(len({tuple(delexicalise(t)) for t in contents[i * k:(i + 1) * k]}) == 1 for i in range(n))
    assert all(math.isnan(v) for v in c["form"]["per_input"].values)
    with pytest.raises(ValueError):
        content_vs_form_sets(1, 5)
    # one slot varied: each pair shares 3 of 5 (slot, phrase) pairs, so Jaccard distance 2/5
    _, one = content_vs_form_sets(n, k, seed=3, varied=1)
    assert ground_truth_table(one, n, k, resamples=1)["content"]["per_input"].values == pytest.approx([0.4] * n)
    assert all(len({tuple(delexicalise(t)) for t in one[i * k:(i + 1) * k]}) == 1 for i in range(n))
    with pytest.raises(ValueError):
        content_vs_form_sets(1, 3, varied=0)


def test_content_vs_form_separates_by_the_ground_truth():
    out = content_vs_form(lambda texts, n, k: ground_truth_table(texts, n, k, resamples=1), 10, 3, seed=0)
    assert out["content"]["auroc"] == 1.0 and out["content"]["d"] == math.inf
    assert (out["content"]["content_mean"], out["content"]["form_mean"]) == (1.0, 0.0)
    assert math.isnan(out["form"]["auroc"])  # content sets have no pair of equal content to word differently


def _distinct_words(texts, n, k):
    """A hand-checkable metric: per set, distinct words / all words."""
    vals = []
    for i in range(n):
        words = " ".join(texts[i * k:(i + 1) * k]).split()
        vals.append(len(set(words)) / len(words))
    return {"distinct": {"per_input": {"values": vals}}}


def _write_sets(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_user_paraphrase_sets_are_read_and_separated_by_hand(tmp_path):
    f = _write_sets(tmp_path / "sets.jsonl", [
        {"kind": "form", "texts": ["the cat sat", "a cat was sitting"], "id": "f1"},  # 6 distinct of 7 words
        {"kind": "content", "texts": ["the cat sat", "the dog ran"]},  # 5 of 6
        {"kind": "form", "texts": ["it rains", "it is raining"]},  # 4 of 5
        {"kind": "content", "texts": ["it rains", "it snows"]}])  # 3 of 4
    sets = read_paraphrase_sets(f)
    assert sets["form"][0] == ["the cat sat", "a cat was sitting"] and len(sets["content"]) == 2
    sep = paraphrase_separation(_distinct_words, sets)["distinct"]
    # content 5/6, 3/4 against form 6/7, 4/5: the word count ranks the sets by wording, not meaning
    assert sep["content_mean"] == pytest.approx((5 / 6 + 3 / 4) / 2)
    assert sep["form_mean"] == pytest.approx((6 / 7 + 4 / 5) / 2)
    assert sep["auroc"] == pytest.approx(0.25) and sep["n"] == 4  # 1 of the 4 (content, form) pairs ranked right


@pytest.mark.parametrize("rows, message", [
    ([{"kind": "meaning", "texts": ["a", "b"]}], ' line 1: "kind" must be "content"'),
    ([{"kind": "form", "texts": ["a"]}], ' line 1: "texts" must be a list of two or more'),
    ([{"kind": "form", "texts": ["a", "b"]}, {"kind": "form", "texts": ["a", "b", "c"]}], " line 2: 3 texts where"),
    ([{"kind": "form", "texts": ["a", "b"]}] * 2 + [{"kind": "content", "texts": ["a", "b"]}],
     '1 set(s) of kind "content"'),
])
def test_bad_paraphrase_sets_name_the_line_and_the_fix(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_paraphrase_sets(_write_sets(tmp_path / "sets.jsonl", rows))
    (tmp_path / "broken.jsonl").write_text('{"kind": "form"\n')
    with pytest.raises(ValueError, match="broken.jsonl line 1: not valid JSON"):
        read_paraphrase_sets(tmp_path / "broken.jsonl")


def _table(**per_metric):
    return {m: {"per_input": Spread(float(np.mean(v)), 0.0, len(v), list(v)),
                "across_input": Spread(float(v[0]), 0.0, 1)} for m, v in per_metric.items()}


def test_condition_correlations_by_hand():
    tables = {"0.2": _table(m=[1, 2, 3], content=[1, 2, 3]), "1.0": _table(m=[4, 5, 6], content=[4, 5, 6])}
    out = condition_correlations(tables, {"0.2": 0.2, "1.0": 1.0}, resamples=50)
    assert out["m"]["ground_truth"]["estimate"] == pytest.approx(1.0)
    # cells (input-major) m = 1,4,2,5,3,6 against τ = .2,1,.2,1,.2,1: ρ = 13.5 / √(17.5 · 13.5)
    assert out["m"]["control"]["estimate"] == pytest.approx(math.sqrt(27 / 35), rel=1e-12)
    assert "ground_truth" not in out["content"]
    means = mean_correlations(tables, {"0.2": 0.2, "1.0": 1.0})
    assert means["m"]["means"] == {"0.2": 2.0, "1.0": 5.0}
    assert means["m"]["control"] == pytest.approx(1.0) and means["m"]["ground_truth"] == pytest.approx(1.0)
    across = mean_correlations({"a": _table(m=[3, 0], content=[1, 0]), "b": _table(m=[1, 0], content=[2, 0]),
                                "c": _table(m=[2, 0], content=[3, 0])}, kind="across_input")
    assert across["m"]["ground_truth"] == pytest.approx(-0.5)  # m ranks 3,1,2 against 1,2,3


def _script():
    spec = importlib.util.spec_from_file_location("diversity_validity_script",
                                                  Path(__file__).parents[1] / "benchmarks" / "diversity_validity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_script_arguments_and_run_checks(tmp_path, capsys):
    script = _script()
    a = script.parse_args([str(tmp_path), "--taus", "0.5,1", "--k", "4"])
    assert a.taus == (0.5, 1.0) and a.k == 4 and a.inputs == 64 and not a.no_sweep
    for bad in (["--taus", "1"], ["--taus", "1,1"], ["--taus", "0,1"], ["--taus", "a,b"], ["--k", "1"], ["--sets", "0"]):
        with pytest.raises(SystemExit):
            script.parse_args([str(tmp_path), *bad])
    assert "missing" in script.check_run(tmp_path, sweep=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "config.yaml").write_text("name: fake\ndiversity:\n  metrics: [ead]\n")
    (tmp_path / "data" / "task.json").write_text(json.dumps({"task": "files"}))
    assert "only for synthetic-tldr" in script.check_run(tmp_path, sweep=False)
    (tmp_path / "data" / "task.json").write_text(json.dumps({"task": "synthetic-tldr"}))
    assert script.check_run(tmp_path, sweep=False) is None
    assert "sft" in script.check_run(tmp_path, sweep=True)  # the sweep needs the SFT model
    # the study's policies as conditions, read from diversity.json as the stage writes it
    forms, contents = content_vs_form_sets(4, 3)
    policies = {p: {m: {kind: dataclasses.asdict(s) for kind, s in v.items()}
                    for m, v in ground_truth_table(texts, 4, 3, resamples=1).items()}
                for p, texts in (("sft", contents), ("ppo", forms))}
    (tmp_path / "diversity").mkdir()
    (tmp_path / "diversity" / "diversity.json").write_text(json.dumps({"policies": policies}))
    out = script.main([str(tmp_path), "--no-sweep", "--sets", "4", "--out", str(tmp_path / "v.json")])
    assert out["policies"]["means_per_input"]["content_distinct"]["ground_truth"] == pytest.approx(1.0)
    assert set(out["content_vs_form"]) == {"4_slots", "1_slots"}
    assert out["content_vs_form"]["4_slots"]["content"]["auroc"] == 1.0
    assert "| ead |" in capsys.readouterr().out and (tmp_path / "v.json").exists()


def test_benchmark_script_sweeps_a_saved_model(tmp_path):
    """The temperature sweep end to end on an untrained two-layer model (nothing is trained)."""
    from helpers import tiny_model_and_tokenizer

    from rlhflab.data.records import PromptRecord, write_jsonl
    from rlhflab.layout import test_set

    model, tok = tiny_model_and_tokenizer()
    model.save_pretrained(tmp_path / "sft")
    tok.save_pretrained(tmp_path / "sft")
    ds = test_set("prompt", "id", "id")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "task.json").write_text(json.dumps({"task": "synthetic-tldr", "sets": [ds.to_dict()]}))
    write_jsonl(tmp_path / "data" / ds.file, [PromptRecord(f"SUBREDDIT: r/work\nPOST: my boss cut my hours {i}.\nTL;DR:")
                                              for i in range(3)])
    (tmp_path / "config.yaml").write_text("name: fake\ndiversity:\n  metrics: [ead]\ngeneration:\n  max_new_tokens: 6\n")
    out = _script().main([str(tmp_path), "--taus", "0.5,1", "--inputs", "3", "--k", "2", "--bootstrap", "20",
                          "--sets", "3"])
    rho = out["temperature"]["sets"]["ead"]
    assert set(rho) == {"control", "ground_truth"} and rho["control"]["n"] == 3
    assert set(out["temperature"]["means_per_input"]["ead"]["means"]) == {"0.5", "1"}
