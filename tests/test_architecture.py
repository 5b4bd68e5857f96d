"""The shape of the code, enforced: stages talk only through artefacts, layers import downwards,
no import cycles, short files, and set names never decide what is in distribution."""

import pkgutil
import re
from pathlib import Path

import rlhflab
from rlhflab.code_fingerprint import module_imports

SRC = Path(rlhflab.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages([str(SRC)], prefix="rlhflab."))


def test_no_stage_imports_another_stage():
    stages = [m for m in MODULES if m.startswith("rlhflab.stages.")]
    assert len(stages) >= 14
    for m in stages:
        others = {i for i in module_imports(m) if i.startswith("rlhflab.stages")}
        assert not others, f"{m} imports {sorted(others)}: stages read each other only through artefacts"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    graph = {m: set(module_imports(m)) for m in MODULES}
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]  # the detector itself works


def _imports_under(prefix: str) -> dict[str, set[str]]:
    return {m: set(module_imports(m)) for m in MODULES if m == prefix or m.startswith(prefix + ".")}


def test_layers_import_downwards():
    upper = ("rlhflab.config", "rlhflab.evaluation", "rlhflab.stages", "rlhflab.pipeline", "rlhflab.tasks",
             "rlhflab.report", "rlhflab.generation", "rlhflab.models", "rlhflab.training", "rlhflab.inputs")
    for m, imps in _imports_under("rlhflab.data").items():
        if m == "rlhflab.prompt_tags":  # a tool over records that samples from a model
            continue
        bad = {i for i in imps if i.startswith(upper)}
        assert not bad, f"{m} (data layer) imports {sorted(bad)}"
    for m, imps in _imports_under("rlhflab.config").items():
        bad = {i for i in imps if not i.startswith(("rlhflab.config", "rlhflab.data"))}
        assert not bad, f"{m} (config) imports {sorted(bad)}"
    for m, imps in _imports_under("rlhflab.algorithms").items():
        bad = {i for i in imps if not i.startswith(("rlhflab.algorithms", "rlhflab.data.tokenize"))}
        assert not bad, f"{m} (pure algorithms) imports {sorted(bad)}"
    for prefix in ("rlhflab.evaluation", "rlhflab.report", "rlhflab.tasks", "rlhflab.models",
                   "rlhflab.ppo_trainer", "rlhflab.sampling"):
        for m, imps in _imports_under(prefix).items():
            bad = {i for i in imps if i.startswith(("rlhflab.stages", "rlhflab.pipeline", "rlhflab.inputs"))}
            assert not bad, f"{m} imports {sorted(bad)}: only stages know about the pipeline"


def test_no_source_file_is_long():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 350}
    assert not long, f"split these: {long}"


def test_no_code_decides_distribution_from_a_set_name():
    pattern = re.compile(r"""startswith\(\s*["'](id|ood|test_id|test_ood)""")
    hits = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, f"use the layout's distribution flag instead: {hits}"
