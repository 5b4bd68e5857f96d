"""A fingerprint of the code a stage runs, for its cache key.

The fingerprint hashes the stage's module and every rlhflab module it imports, directly or not
(imports inside functions included), read statically from the source. Each module is hashed as
its syntax tree without docstrings, so editing a comment or a docstring keeps artefacts, while
any change to what runs invalidates them. The same import graph backs the architecture tests
(no stage imports another, no import cycles).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import lru_cache

ROOT = "rlhflab"


@lru_cache(maxsize=None)
def _source(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    with open(spec.origin, encoding="utf-8") as f:
        return f.read()


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@lru_cache(maxsize=None)
def module_imports(module: str) -> frozenset[str]:
    """The rlhflab modules `module` imports anywhere in its source (a `from pkg import name` counts
    as pkg.name when that is a module, else as pkg)."""
    source = _source(module)
    if source is None:
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == ROOT)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == ROOT:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if _is_module(sub) else node.module)
    return frozenset(found - {module})


@lru_cache(maxsize=None)
def import_closure(module: str) -> frozenset[str]:
    """`module` and every rlhflab module it reaches through imports. The packages holding them are
    left out: their __init__ runs on import but only lists or re-exports (a module imported from a
    package by name is followed as a module), so a stage does not depend on its siblings through
    `rlhflab.stages`, whose __init__ lists every stage."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(module_imports(m))
    return frozenset(seen)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=None)
def _module_hash(module: str) -> str:
    source = _source(module)
    if source is None:
        return "-"
    return hashlib.sha256(ast.dump(_strip_docstrings(ast.parse(source))).encode()).hexdigest()


@lru_cache(maxsize=None)
def code_fingerprint(module: str) -> str:
    """Hash of the code `module` runs: its own and that of every rlhflab module it imports."""
    h = hashlib.sha256()
    for m in sorted(import_closure(module)):
        h.update(f"{m}:{_module_hash(m)}\n".encode())
    return h.hexdigest()[:16]


def forget() -> None:
    """Drop the memoised sources and hashes (after code changed within one process, e.g. in tests)."""
    for f in (_source, module_imports, import_closure, _module_hash, code_fingerprint):
        f.cache_clear()
