"""The malformed-input corpus (tests/malformed/cases.yaml): every bad input gets its exact one-line
answer and exit code, no traceback, and no stage folder is published."""

import ast
import os
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rlhflab.cli import app

CORPUS = yaml.safe_load((Path(__file__).parent / "malformed" / "cases.yaml").read_text())


def _write(path: Path, spec) -> None:
    if path.exists() or path.is_symlink():
        path.unlink() if not path.is_dir() else None
    if spec is None:
        return
    if isinstance(spec, str):
        path.write_text(spec)
    elif "bytes" in spec:
        path.write_bytes(ast.literal_eval(spec["bytes"]))
    elif "mb_line" in spec:
        path.write_text('{"prompt": "' + "x" * (spec["mb_line"] << 20) + '", "completion": " y"}\n')
    elif spec.get("dir"):
        path.mkdir()
    elif "symlink" in spec:
        os.symlink(spec["symlink"], path)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_the_corpus_is_large_enough():
    assert len(CORPUS["cases"]) >= 40
    assert len({c["name"] for c in CORPUS["cases"]}) == len(CORPUS["cases"])


@pytest.mark.parametrize("case", CORPUS["cases"], ids=[c["name"] for c in CORPUS["cases"]])
def test_bad_input_gets_one_clear_line(case, tmp_path):
    sub = lambda s: s.replace("{tmp}", str(tmp_path))  # noqa: E731
    for name, text in CORPUS["good_files"].items():
        (tmp_path / name).write_text(text)
    for name, spec in (case.get("files") or {}).items():
        _write(tmp_path / name, sub(spec) if isinstance(spec, str) else spec)
    config = case.get("config", CORPUS["default_config"])
    _write(tmp_path / "c.yaml", sub(config) if isinstance(config, str) else config)
    args = ["run", str(tmp_path / "c.yaml"), "--until", "data", "--set", "pipeline.progress=false",
            *case.get("args", [])]
    res = CliRunner().invoke(app, args)
    output = _norm(res.output)
    assert res.exit_code == case["rc"], output
    assert _norm(sub(case["message"])) in output, output
    assert "Traceback" not in output and not isinstance(res.exception, (AttributeError, TypeError, KeyError))
    assert not list(tmp_path.glob("runs/*/*/manifest.json")), "a stage was published from bad input"
