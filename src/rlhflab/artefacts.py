"""What a finished stage folder holds, whether it still holds it, and lending it to another run.

Each manifest records every artefact file's size and SHA-256. Before a stage is reused its files
are checked against the sizes (cheap: a truncated or deleted file reruns the stage, saying why);
`rlhflab verify RUN` checks the hashes too. A manifest that is not valid JSON also reruns its
stage, saying so, instead of silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_table(folder: Path) -> dict[str, list]:
    """{relative path: [size, sha256]} of every file in a stage folder but its manifest."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): [p.stat().st_size, _sha256(p)]
            for p in sorted(folder.rglob("*")) if p.is_file() and p != folder / MANIFEST}


def check_files(folder: Path, manifest: dict, hashes: bool = False) -> str | None:
    """Why the folder no longer holds what its manifest lists (None: it does). Sizes only unless
    `hashes`; a manifest written before files were recorded is taken as it is."""
    for rel, (size, digest) in (manifest.get("files") or {}).items():
        path = Path(folder) / rel
        if not path.is_file():
            return f"{path} is missing"
        actual = path.stat().st_size
        if actual != size:
            return f"{path} is {actual} bytes, its manifest says {size}"
        if hashes and _sha256(path) != digest:
            return f"{path} does not match the SHA-256 its manifest records"
    return None


def manifest_problem(folder: Path) -> str | None:
    """Why a stage folder's manifest cannot be read, or None when it can (or there is none)."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"{path} is not a readable manifest ({type(e).__name__})"
    return None


def read_manifest(folder: Path) -> dict | None:
    """A stage folder's manifest, or None when it has none or it cannot be read."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def donated_folder(stage: str, key: str, donors: tuple[Path, ...]) -> tuple[Path, dict] | None:
    """A finished folder of this stage with this very key in another run (a multi-seed run's
    earlier seed), and its manifest: its artefacts are what this run would compute."""
    for run in donors:
        m = read_manifest(Path(run) / stage)
        if m and m.get("key") == key and check_files(Path(run) / stage, m) is None:
            return Path(run) / stage, m
    return None


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link a finished stage folder (copy where links cannot cross filesystems)."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)
    shutil.copytree(src, dst, copy_function=link)
