"""One run at a time per experiment folder.

`run_lock(run_dir)` creates `run_dir/.lock` atomically (O_EXCL) holding the owner's pid, host and
start time, and removes it when the run ends. A second run on the same folder fails at once with
"runs/<name> is in use by pid N"; a lock left by a process that no longer exists on this host (a
killed run) is detected and taken over. Without the lock two runs would build into the same
temporary folders and publish interleaved artefacts that later runs call up to date.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"


class RunInUse(RuntimeError):
    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _try_create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                   "started": time.strftime("%Y-%m-%dT%H:%M:%S")}, f)
    return True


@contextmanager
def run_lock(run_dir: Path):
    path = Path(run_dir) / LOCK
    for _ in range(3):
        if _try_create(path):
            break
        owner = _owner(path)
        if owner is None:  # being written this instant, or garbage: look again, then take it over
            time.sleep(0.1)
            owner = _owner(path)
        if owner is not None and owner.get("pid") != os.getpid():
            if owner.get("host") != socket.gethostname():
                raise RunInUse(f"{run_dir} is in use by pid {owner.get('pid')} on host {owner.get('host')} "
                               f"(since {owner.get('started')}); if that run is gone, delete {path}")
            if _alive(int(owner.get("pid", -1))):
                raise RunInUse(f"{run_dir} is in use by pid {owner['pid']} (since {owner.get('started')}); "
                               "wait for it to finish, or give this run another name (--set name=...)")
        path.unlink(missing_ok=True)  # stale: its process is gone
    else:
        raise RunInUse(f"{run_dir}: could not take the run lock {path}; another run keeps taking it")
    try:
        yield
    finally:
        owner = _owner(path)
        if owner is not None and owner.get("pid") == os.getpid():
            path.unlink(missing_ok=True)
