"""Task builders: turn a config's `task` section into records in the data layout (rlhflab.layout).

`synthetic` generates the embedded task from the seed; `datasets` converts public datasets through
their adapters (chat templates, OOD splits); `files` validates and copies your own JSONL files.
The data stage calls `build_task`; no later stage knows which builder ran.
"""

from __future__ import annotations

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
