"""`rlhflab export`: a run's tables as CSV and LaTeX, and the figures as vector PDFs."""

import csv
import json

from typer.testing import CliRunner

from rlhflab.cli import app
from rlhflab.report.export import export_run
from rlhflab.report.figures import save_figure


def _run(tmp_path):
    run = tmp_path / "run"
    for stage, name, obj in [
        ("report", "findings.json", [{"claim": "PPO beats SFT in distribution", "verdict": "reproduced",
                                      "direction": 1, "estimate": 12.5, "ci_low": 4.25, "ci_high": 20.0,
                                      "p_value": 0.0004, "p_holm": 0.0052, "unit": "points", "n": 48,
                                      "family": "primary"},
                                     {"claim": "KL & 50% of β", "verdict": "not run", "direction": -1,
                                      "unit": "score", "evidence": "not run"}]),
        ("eval", "results.json", {"judge": "gold", "baseline": "sft",
                                  "sets": {"test": {"distribution": "id"}, "far": {"distribution": "ood"}},
                                  "pvr": {"ppo": {"test": {"win_rate": 62.5, "standard_error": 3.1, "n": 48,
                                                           "n_draws": 0, "n_invalid": 0, "ci_low": 56.0,
                                                           "ci_high": 68.8},
                                                  "far": {"win_rate": 40.0, "standard_error": 4.0, "n": 48,
                                                          "n_draws": 0, "n_invalid": 0}}},
                                  "head_to_head": {}}),
        ("diversity", "diversity.json", {"policies": {"sft": {"ead": {"per_input": {"mean": 0.8, "std": 0.05},
                                                                      "across_input": {"mean": 0.9, "std": 0.01}}}}}),
        ("rm_eval", "table.json", {"models": {"rm": {"accuracy": {"validation": 0.62}, "gold_agreement": {}}}}),
    ]:
        (run / stage).mkdir(parents=True, exist_ok=True)
        (run / stage / name).write_text(json.dumps(obj))
    return run


def test_csv_keeps_every_number_and_latex_escapes_text_and_rounds(tmp_path):
    run = _run(tmp_path)
    written = export_run(run, tmp_path / "csv", "csv")
    assert [p.name for p in written] == ["findings.csv", "pvr.csv", "diversity.csv", "reward_models.csv"]
    rows = list(csv.reader((tmp_path / "csv" / "pvr.csv").open()))
    assert rows == [["policy", "test_set", "distribution", "win_rate", "standard_error", "ci_low", "ci_high", "n"],
                    ["ppo", "test", "id", "62.5", "3.1", "56.0", "68.8", "48"],
                    ["ppo", "far", "ood", "40.0", "4.0", "", "", "48"]]
    findings = list(csv.reader((tmp_path / "csv" / "findings.csv").open()))
    assert findings[1] == ["PPO beats SFT in distribution", "reproduced", "12.5", "4.25", "20.0", "0.0004", "0.0052",
                           "primary", "points", "48"]
    tex = export_run(run, tmp_path / "tex", "latex")
    findings_tex = (tmp_path / "tex" / "findings.tex").read_text()
    assert r"\begin{tabular}{llrrrrrllr}" in findings_tex and r"\toprule" in findings_tex
    assert r"PPO beats SFT in distribution & reproduced & 12.5 & 4.2 & 20.0 & 0.0004 & 0.0052 & primary & points & 48 \\" \
        in findings_tex
    assert r"KL \& 50\% of β & not run & -- & -- & -- & -- & -- & -- & score & -- \\" in findings_tex
    assert (tmp_path / "tex" / "reward_models.tex").exists() and len(tex) == 4


def test_the_cli_exports_into_the_run_and_refuses_an_empty_folder(tmp_path):
    run = _run(tmp_path)
    res = CliRunner().invoke(app, ["export", str(run), "--format", "latex"])
    assert res.exit_code == 0 and (run / "export" / "pvr.tex").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(app, ["export", str(empty)])
    assert res.exit_code == 1 and "no finished eval, diversity, rm_eval or report stage to export" in res.output
    res = CliRunner().invoke(app, ["export", str(run), "--format", "xlsx"])
    assert res.exit_code == 1 and "--format xlsx: choose csv or latex" in res.output


def test_every_figure_is_also_a_vector_pdf_with_the_same_bytes_each_time(tmp_path):
    for _ in range(2):
        save_figure(tmp_path / "f.png", "t", lambda ax: ax.plot([0, 1], [1, 0]))
        pdf = (tmp_path / "f.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
    save_figure(tmp_path / "f.png", "t", lambda ax: ax.plot([0, 1], [1, 0]))
    assert (tmp_path / "f.pdf").read_bytes() == pdf
