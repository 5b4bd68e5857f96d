"""The `files` task: your own JSONL records, validated record by record and copied into the layout."""

from __future__ import annotations

import shutil
from pathlib import Path

from rlhflab.config import FilesTask
from rlhflab.data.records import PreferenceRecord, PromptRecord, SFTRecord, read_records, write_json
from rlhflab.layout import PRETRAIN_CORPUS, TASK_INFO, DataSet, Layout, test_set

RECORDS = {"sft": SFTRecord, "preference": PreferenceRecord, "prompt": PromptRecord}


def files_sets(task: FilesTask) -> list[tuple[DataSet, Path | None]]:
    """Each set of the layout with the file the config gives for it (None where not given)."""
    out = [(DataSet("sft", "train", "train"), task.sft_train),
           (DataSet("sft", "validation", "validation"), task.sft_validation),
           (DataSet("preference", "train", "train"), task.preference_train),
           (DataSet("preference", "validation", "validation"), task.preference_validation),
           (DataSet("prompt", "train", "train"), task.policy_prompts),
           (DataSet("prompt", "validation", "validation"), task.policy_validation)]
    out += [(test_set("prompt", k, v.distribution, v.shift, v.compare_to), v.path) for k, v in task.test_sets.items()]
    out += [(test_set("preference", k, v.distribution, v.shift, v.compare_to), v.path)
            for k, v in task.preference_tests.items()]
    return out


def build_files_task(task: FilesTask, out_dir: Path) -> dict:
    given = [(ds, src) for ds, src in files_sets(task) if src is not None]
    sizes = {}
    for ds, src in given:
        sizes[ds.file] = len(read_records(src, RECORDS[ds.kind]))  # validates every record, naming file and line
        (out_dir / ds.file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out_dir / ds.file)
    if task.pretrain_corpus is not None:
        (out_dir / PRETRAIN_CORPUS).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(task.pretrain_corpus, out_dir / PRETRAIN_CORPUS)
    layout = Layout.build(ds for ds, _ in given)
    write_json(out_dir / TASK_INFO, {"task": "files", "gold_reward": None, "sizes": sizes, "sets": layout.to_json()})
    return {"sizes": sizes}
