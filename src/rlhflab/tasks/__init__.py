"""Task builders: turn a config's `task` section into records in the data layout (rlhflab.layout).

`synthetic` generates the embedded task from the seed; `datasets` converts public datasets through
their adapters (chat templates, OOD splits); `files` validates and copies your own JSONL files.
The data stage calls `build_task`; no later stage knows which builder ran.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from rlhflab.config import DatasetsTask, FilesTask, SyntheticTask


def build_task(task, seed: int, out_dir: Path, tokenizer=None,
               progress: Callable[[str], None] = lambda s: None) -> dict:
    """Write every set of the task and task.json under out_dir; return a summary for the manifest."""
    if isinstance(task, SyntheticTask):
        from rlhflab.tasks.synthetic import build_synthetic_task

        return build_synthetic_task(task, seed, out_dir, progress)
    if isinstance(task, DatasetsTask):
        from rlhflab.tasks.datasets import build_datasets_task

        return build_datasets_task(task, seed, out_dir, tokenizer, progress)
    from rlhflab.tasks.files import build_files_task

    return build_files_task(task, seed, out_dir)


def local_files(task) -> list[str]:
    """The local files a task names (its JSONL files, or the source rows of a datasets task): their
    size and modification time join the data stage's cache key."""
    if isinstance(task, FilesTask):
        from rlhflab.tasks.files import files_sets

        paths = [src for _, src in files_sets(task)] + [task.pretrain_corpus]
    elif isinstance(task, DatasetsTask):
        refs = [task.sft_train, task.sft_validation, task.preference_train, task.preference_validation,
                task.policy_prompts, task.policy_validation, *task.test_sets.values(), *task.preference_tests.values()]
        paths = [r.path for r in refs if r is not None]
    else:
        paths = []
    return sorted({str(p) for p in paths if p is not None})


# measured on the 2-core quickstart machine (AMD EPYC): ~800 B per record at peak (tracemalloc,
# doubled for the interpreter's own overhead) and ~3000 records/s for the synthetic task
SYNTHETIC_BYTES_PER_RECORD = 1600
SYNTHETIC_RECORDS_PER_S = 3000
MAX_SECONDS_UNASKED = 3600


def available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def preflight(task) -> str | None:
    """Why building this task's data would exhaust the machine (memory) or take over an hour, from
    the config alone; None when it is fine. Only the synthetic task's size is known in advance
    (real datasets are as large as they are; `limit:` bounds them)."""
    if not isinstance(task, SyntheticTask):
        return None
    from rlhflab.tasks.synthetic import split_shifts

    n_sets = len(split_shifts(task.split))
    n = (task.n_pretrain + task.n_sft_train + task.n_sft_validation + task.n_preference_train
         + task.n_preference_validation + n_sets * task.n_preference_test + task.n_policy_prompts
         + task.n_policy_validation + n_sets * task.n_test + task.median_pool)
    need, seconds, have = n * SYNTHETIC_BYTES_PER_RECORD, n / SYNTHETIC_RECORDS_PER_S, available_memory()
    if (have is None or need <= have / 2) and seconds <= MAX_SECONDS_UNASKED:
        return None
    return (f"the task asks for {n:,} records: about {need / 1e9:,.1f} GB of memory"
            + (f" (this machine has {have / 1e9:,.1f} GB available)" if have else "")
            + f" and {seconds / 3600:,.1f} hours to generate; lower task.n_* or pass --yes")
