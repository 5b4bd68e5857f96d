import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlhflab.config import load_config
from rlhflab.pipeline import PipelineError, Stage, read_manifest, run_pipeline

CALLS: list[str] = []


def _writer(name):
    def run(ctx):
        CALLS.append(name)
        for dep in ctx.stage.needs(ctx.cfg):
            assert (ctx.input(dep) / "out.txt").exists()
        lr = ctx.cfg.sft.optim.lr if "sft" in ctx.stage.reads else None  # only what its key covers
        (ctx.out / "out.txt").write_text(f"{name} lr={lr}")
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


def test_recovers_from_a_stage_killed_mid_write(cfg, tmp_path, monkeypatch):
    # the stages live in a module both processes import, so the rerun sees the same code
    (tmp_path / "kill_stages.py").write_text(textwrap.dedent("""
        import os
        def a(ctx):
            (ctx.out / "out.txt").write_text("a")
        def b(ctx):
            (ctx.out / "half.bin").write_bytes(b"x" * 1000)
            if os.environ.get("KILL_B"):
                os._exit(9)  # killed mid-write
            (ctx.out / "half.bin").unlink()
    """))
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from kill_stages import a, b
        from rlhflab.config import load_config
        from rlhflab.pipeline import Stage, run_pipeline
        cfg = load_config("quickstart", ["output_dir={cfg.output_dir}", "name=exp"])
        run_pipeline(cfg, [Stage("a", lambda c: [], ("seed",), a), Stage("b", lambda c: ["a"], ("seed", "sft"), b)])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "KILL_B": "1"})
    assert proc.returncode == 9, proc.stderr
    run_dir = cfg.run_dir
    assert (run_dir / "a" / "manifest.json").exists()
    assert not (run_dir / "b").exists()  # nothing that looks complete
    assert list(run_dir.glob(".tmp-b-*"))  # the half-written folder is hidden
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("KILL_B", raising=False)
    from kill_stages import a, b

    res = run_pipeline(cfg, [Stage("a", lambda c: [], ("seed",), a), Stage("b", lambda c: ["a"], ("seed", "sft"), b)])
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


def test_a_stage_sees_only_the_config_keys_its_cache_key_covers(cfg):
    from rlhflab.cache_key import ConfigAccessError

    seen = {}

    def reads_declared(ctx):
        seen["lr"] = ctx.cfg.sft.optim.lr  # under the declared "sft"
        seen["dtype"] = ctx.cfg.model.dtype  # a declared leaf inside an undeclared section
        seen["seed"] = ctx.seed

    def reads_more(ctx):
        ctx.cfg.model.name_or_path

    run_pipeline(cfg, [Stage("a", lambda c: [], ("seed", "sft", "model.dtype"), reads_declared)])
    assert seen == {"lr": cfg.sft.optim.lr, "dtype": "float32", "seed": 0}
    with pytest.raises(ConfigAccessError, match=r"read config key 'model.name_or_path'.*add 'model.name_or_path'"):
        run_pipeline(cfg, [Stage("b", lambda c: [], ("model.dtype",), reads_more)])


def test_editing_a_stages_code_reruns_it_but_a_docstring_does_not(cfg, tmp_path, monkeypatch):
    import importlib

    from rlhflab.code_fingerprint import forget

    monkeypatch.syspath_prepend(str(tmp_path))
    mod = tmp_path / "probe_stage.py"

    def load(body: str):
        mod.write_text(body)
        forget()
        importlib.invalidate_caches()
        import probe_stage

        return importlib.reload(probe_stage)

    src = '"""A stage."""\nfrom rlhflab.stats import standard_error\n\ndef run(ctx):\n    return {"x": 1}\n'
    m = load(src)
    reg = lambda: [Stage("p", lambda c: [], ("seed",), m.run)]  # noqa: E731
    assert [r.status for r in run_pipeline(cfg, reg())] == ["ran"]
    assert [r.status for r in run_pipeline(cfg, reg())] == ["cached"]
    m = load(src.replace('"""A stage."""', '"""A stage, documented better."""'))
    assert [r.status for r in run_pipeline(cfg, reg())] == ["cached"]
    m = load(src.replace('"x": 1', '"x": 2'))
    assert [r.status for r in run_pipeline(cfg, reg())] == ["ran"]


def test_fingerprint_follows_imports_but_not_sibling_stages():
    from rlhflab.code_fingerprint import import_closure

    closure = import_closure("rlhflab.stages.eval")
    assert {"rlhflab.evaluation.judges", "rlhflab.data.synthetic", "rlhflab.data.gold"} <= closure  # gold via import
    assert not {m for m in closure if m.startswith("rlhflab.stages.") and m != "rlhflab.stages.eval"}


def test_wanted_stages_are_inputs_only_when_active(cfg):
    got = {}

    def report(ctx):
        got["inputs"] = ctx.inputs
        got["has_b"] = ctx.has_input("b")

    reg = [Stage("a", lambda c: [], ("seed",), _writer("a")),
           Stage("b", lambda c: ["a"], ("seed",), _writer("b"), enabled=lambda c: c.seed == 0),
           Stage("r", lambda c: [], (), report, wants=lambda c: ["a", "b"])]
    run_pipeline(cfg, reg)
    assert got == {"inputs": ("a", "b"), "has_b": True}
    run_pipeline(cfg.model_copy(update={"seed": 1}), reg)
    assert got == {"inputs": ("a",), "has_b": False}


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_lives(cfg):
    import json as _json

    from rlhflab.run_lock import RunInUse

    cfg.run_dir.mkdir(parents=True)
    lock = cfg.run_dir / ".lock"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(_json.dumps({"pid": sleeper.pid, "host": __import__("socket").gethostname(),
                                     "started": "then"}))
        with pytest.raises(RunInUse, match=rf"{cfg.run_dir} is in use by pid {sleeper.pid}"):
            run_pipeline(cfg, registry())
        assert not (cfg.run_dir / "a").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # the holder is gone: its stale lock is taken over, and released at the end
    CALLS.clear()
    assert [r.status for r in run_pipeline(cfg, registry())] == ["ran"] * 3
    assert not lock.exists()


def test_cli_says_which_pid_holds_the_run(cfg):
    from typer.testing import CliRunner

    from rlhflab.cli import app

    cfg.run_dir.mkdir(parents=True)
    # a lock naming this very process would be its own leftover; another live process blocks: the parent
    (cfg.run_dir / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": __import__("socket").gethostname(),
                                                    "started": "now"}))
    res = CliRunner().invoke(app, ["run", "quickstart", "--seeds", "1", "--until", "data",
                                   "--set", f"output_dir={cfg.output_dir}",
                                   "--set", "name=exp", "--set", "pipeline.progress=false"])
    assert res.exit_code == 1 and f"is in use by pid {os.getppid()}" in res.output


def test_a_truncated_artefact_or_garbage_manifest_reruns_its_stage_saying_why(cfg):
    from typer.testing import CliRunner

    from rlhflab.cli import app

    run_pipeline(cfg, registry())
    seen = []
    (cfg.run_dir / "b" / "out.txt").write_text("x")  # truncated: another size than recorded
    res = run_pipeline(cfg, registry(), on_stage=lambda n, s: seen.append((n, s)))
    assert [r.status for r in res] == ["cached", "ran", "ran"]
    assert ("b", f"rerun: {cfg.run_dir / 'b' / 'out.txt'} is 1 bytes, its manifest says 10") in seen
    (cfg.run_dir / "c" / "manifest.json").write_text("{garbage")
    seen.clear()
    run_pipeline(cfg, registry(), on_stage=lambda n, s: seen.append((n, s)))
    assert ("c", f"rerun: {cfg.run_dir / 'c' / 'manifest.json'} is not a readable manifest (JSONDecodeError)") in seen
    # verify checks hashes: same size, other bytes
    assert CliRunner().invoke(app, ["verify", str(cfg.run_dir)]).exit_code == 0
    (cfg.run_dir / "a" / "out.txt").write_text("A lr=None")
    res = CliRunner().invoke(app, ["verify", str(cfg.run_dir)])
    assert res.exit_code == 1 and "a: " in res.output and "does not match the SHA-256" in res.output


@pytest.mark.parametrize("problem", ["output_dir is a file", "output_dir is not writable"])
def test_environment_errors_are_one_line_naming_the_path(tmp_path, problem):
    from typer.testing import CliRunner

    from rlhflab.cli import app

    target = tmp_path / "out"
    if problem == "output_dir is a file":
        target.write_text("not a folder")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        target.mkdir()
        target.chmod(0o500)
    args = ["run", "quickstart", "--seeds", "1", "--until", "data", "--set", f"output_dir={target}",
            "--set", "pipeline.progress=false"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert str(target) in res.output and "choose another output_dir" in res.output
    assert len(res.output.strip().splitlines()) == 1
    debug = CliRunner().invoke(app, args + ["--debug"])
    assert debug.exit_code != 0 and isinstance(debug.exception, OSError)


def test_the_summary_names_a_report_only_when_this_run_wrote_one(tmp_path):
    from typer.testing import CliRunner

    from rlhflab.cli import app

    old = tmp_path / "small" / "report"
    old.mkdir(parents=True)
    (old / "index.html").write_text("an older run's report")
    res = CliRunner().invoke(app, ["run", "quickstart", "--seeds", "1", "--until", "data",
                                   "--set", f"output_dir={tmp_path}",
                                   "--set", "name=small", "--set", "pipeline.progress=false",
                                   "--set", "task.n_pretrain=200", "--set", "task.median_pool=200"])
    assert res.exit_code == 0, res.output
    assert "artefacts:" in res.output and "report:" not in res.output


def memory_registry() -> list[Stage]:
    """Stage a holds 400 MB (touched), stage b nothing."""
    import torch

    def hungry(ctx):
        x = torch.ones(100_000_000)
        (ctx.out / "out.txt").write_text(str(float(x[-1])))
        return {}

    def light(ctx):
        (ctx.out / "out.txt").write_text("ok")
        return {}

    return [Stage("a", lambda c: [], ("seed",), hungry), Stage("b", lambda c: ["a"], ("seed",), light)]


def test_each_stage_records_its_own_peak_memory(cfg):
    """A stage that holds 400 MB shows it in its manifest; the next stage's peak starts afresh.
    Run in a fresh process: in a long test session the heap's state decides what RSS does."""
    from rlhflab.memory import reset_peak

    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_pipeline import memory_registry
        from rlhflab.config import load_config
        from rlhflab.pipeline import run_pipeline
        cfg = load_config("quickstart", ["output_dir={cfg.output_dir}", "name={cfg.name}", "seeds=null",
                                         "pipeline.progress=false"])
        run_pipeline(cfg, memory_registry())
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    reg = memory_registry()
    a, b = read_manifest(cfg.run_dir / "a")["memory"], read_manifest(cfg.run_dir / "b")["memory"]
    assert a["peak_rss_mb"] > 0
    if reset_peak():  # Linux: the peak is reset per stage
        assert a["peak_rss_mb"] - b["peak_rss_mb"] > 300
    cached = {r.name: r for r in run_pipeline(cfg, reg)}
    assert cached["a"].status == "cached" and cached["a"].memory == a
