import subprocess
import sys
import textwrap

import pytest

from rlhflab.config import load_config
from rlhflab.pipeline import PipelineError, Stage, read_manifest, run_pipeline

CALLS: list[str] = []


def _writer(name):
    def run(ctx):
        CALLS.append(name)
        for dep in ctx.stage.needs(ctx.cfg):
            assert (ctx.input(dep) / "out.txt").exists()
        (ctx.out / "out.txt").write_text(f"{name} lr={ctx.cfg.sft.optim.lr}")
        ctx.log(1, {"loss": 1.0})
        return {"value": 1}
    return run


def registry():
    return [
        Stage("a", lambda cfg: [], ("seed",), _writer("a")),
        Stage("b", lambda cfg: ["a"], ("seed", "sft"), _writer("b")),
        Stage("c", lambda cfg: ["b"], ("seed",), _writer("c")),
    ]


@pytest.fixture
def cfg(tmp_path):
    return load_config("quickstart", [f"output_dir={tmp_path}", "name=exp"])


def test_second_run_hits_the_cache_for_every_stage(cfg):
    CALLS.clear()
    first = run_pipeline(cfg, registry())
    assert [r.status for r in first] == ["ran"] * 3 and CALLS == ["a", "b", "c"]
    second = run_pipeline(cfg, registry())
    assert [r.status for r in second] == ["cached"] * 3 and CALLS == ["a", "b", "c"]
    m = read_manifest(cfg.run_dir / "b")
    assert m["seed"] == 0 and m["config"]["sft"]["optim"]["lr"] == cfg.sft.optim.lr
    assert m["versions"]["torch"] and m["metrics"] == {"value": 1} and m["inputs"]["a"]
    assert (cfg.run_dir / "b" / "metrics.jsonl").read_text().strip() == '{"step": 1, "loss": 1.0}'
    assert (cfg.run_dir / "config.yaml").exists()


def test_config_change_reruns_the_stage_and_its_descendants(cfg):
    run_pipeline(cfg, registry())
    CALLS.clear()
    cfg2 = cfg.model_copy(deep=True)
    cfg2.sft.optim.lr = 1.0
    res = run_pipeline(cfg2, registry())
    assert [r.status for r in res] == ["cached", "ran", "ran"] and CALLS == ["b", "c"]
    assert (cfg.run_dir / "b" / "out.txt").read_text() == "b lr=1.0"


def test_force_and_until(cfg):
    CALLS.clear()
    res = run_pipeline(cfg, registry(), until="b")
    assert [r.name for r in res] == ["a", "b"] and CALLS == ["a", "b"]
    CALLS.clear()
    res = run_pipeline(cfg, registry(), force={"a"})
    assert CALLS == ["a", "b", "c"]  # b and c read a new artefact of a
    with pytest.raises(PipelineError, match="no such active stage"):
        run_pipeline(cfg, registry(), until="zzz")
    with pytest.raises(PipelineError, match="no such active stage"):
        run_pipeline(cfg, registry(), force={"zzz"})


def test_undeclared_input_is_an_error(cfg):
    def sneaky(ctx):
        ctx.input("a")
    with pytest.raises(PipelineError, match="without declaring"):
        run_pipeline(cfg, [Stage("a", lambda c: [], (), _writer("a")), Stage("s", lambda c: [], (), sneaky)])


def test_recovers_from_a_stage_killed_mid_write(cfg, tmp_path):
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from rlhflab.config import load_config
        from rlhflab.pipeline import Stage, run_pipeline
        def a(ctx):
            (ctx.out / "out.txt").write_text("a")
        def b(ctx):
            (ctx.out / "half.bin").write_bytes(b"x" * 1000)
            os._exit(9)  # killed mid-write
        cfg = load_config("quickstart", ["output_dir={cfg.output_dir}", "name=exp"])
        run_pipeline(cfg, [Stage("a", lambda c: [], ("seed",), a), Stage("b", lambda c: ["a"], ("seed", "sft"), b)])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    run_dir = cfg.run_dir
    assert (run_dir / "a" / "manifest.json").exists()
    assert not (run_dir / "b").exists()  # nothing that looks complete
    assert list(run_dir.glob(".tmp-b-*"))  # the half-written folder is hidden
    CALLS.clear()
    reg = [Stage("a", lambda c: [], ("seed",), _writer("a")), Stage("b", lambda c: ["a"], ("seed", "sft"), _writer("b"))]
    res = run_pipeline(cfg, reg)
    assert [r.status for r in res] == ["cached", "ran"]
    assert not list(run_dir.glob(".tmp-*"))
    assert not (run_dir / "b" / "half.bin").exists() and (run_dir / "b" / "manifest.json").exists()


def test_failed_stage_leaves_previous_artefact_untouched(cfg):
    run_pipeline(cfg, registry())
    before = (cfg.run_dir / "b" / "manifest.json").read_text()

    def boom(ctx):
        (ctx.out / "out.txt").write_text("partial")
        raise RuntimeError("boom")
    reg = registry()
    reg[1] = Stage("b", lambda c: ["a"], ("seed", "sft"), boom)
    with pytest.raises(RuntimeError):
        run_pipeline(cfg, reg, force={"b"})
    assert (cfg.run_dir / "b" / "manifest.json").read_text() == before
