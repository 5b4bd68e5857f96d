"""The `files` task: your own JSONL records, validated record by record and written into the layout.

Sets the config leaves out follow rlhflab.tasks.common, as for a datasets task: a missing
validation set is a seeded 5% of its training set, missing policy prompts are the SFT prompts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rlhflab.config import FilesTask
from rlhflab.data.records import RECORD_TYPES, RecordError, read_records, write_json, write_jsonl
from rlhflab.layout import PRETRAIN_CORPUS, TASK_INFO, DataSet, Layout, test_set
from rlhflab.tasks.common import corpus_from_training, fill_missing

# config field -> its set in the layout
TRAIN_AND_VALIDATION = {"sft_train": DataSet("sft", "train", "train"),
                        "sft_validation": DataSet("sft", "validation", "validation"),
                        "preference_train": DataSet("preference", "train", "train"),
                        "preference_validation": DataSet("preference", "validation", "validation"),
                        "policy_prompts": DataSet("prompt", "train", "train"),
                        "policy_validation": DataSet("prompt", "validation", "validation")}


def files_sets(task: FilesTask) -> list[tuple[DataSet, Path | None]]:
    """Each set of the layout with the file the config gives for it (None where not given)."""
    out = [(ds, getattr(task, field)) for field, ds in TRAIN_AND_VALIDATION.items()]
    out += [(test_set("prompt", k, v.distribution, v.shift, v.compare_to), v.path) for k, v in task.test_sets.items()]
    out += [(test_set("preference", k, v.distribution, v.shift, v.compare_to), v.path)
            for k, v in task.preference_tests.items()]
    return out


def _read(key: str, src: Path, kind: str) -> list:
    """The records of the file at task key `key`; a missing file names the key as well as the path."""
    if not Path(src).exists() and not Path(src).is_symlink():  # a broken link gets read_records' own message
        raise RecordError(f"task.{key}: {src}: no such file (a relative path is read from the config file's folder "
                          "when the file is there, else from the working directory)")
    return read_records(src, RECORD_TYPES[kind])  # validates every record, naming file and line


def build_files_task(task: FilesTask, seed: int, out_dir: Path) -> dict:
    # files_sets' order: the train/validation keys, then test_sets, then preference_tests
    keys = [*TRAIN_AND_VALIDATION, *(f"test_sets.{k}.path" for k in task.test_sets),
            *(f"preference_tests.{k}.path" for k in task.preference_tests)]
    given = {ds: (src, _read(key, src, ds.kind)) for key, (ds, src) in zip(keys, files_sets(task), strict=True)
             if src is not None}
    named = {field: given[ds][1] if ds in given else None for field, ds in TRAIN_AND_VALIDATION.items()}
    filled = fill_missing(named, seed)
    sets: list[DataSet] = []
    sizes, derived = {}, []
    for field, ds in TRAIN_AND_VALIDATION.items():
        recs = filled[field]
        if not recs:
            continue
        sets.append(ds)
        sizes[ds.file] = len(recs)
        if recs is named[field]:  # given and used whole: copied byte for byte
            (out_dir / ds.file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(given[ds][0], out_dir / ds.file)
        else:
            write_jsonl(out_dir / ds.file, recs)
            derived.append(ds.file)
    for ds, (src, recs) in given.items():
        if ds.role == "test":
            sets.append(ds)
            sizes[ds.file] = len(recs)
            (out_dir / ds.file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out_dir / ds.file)
    (out_dir / PRETRAIN_CORPUS).parent.mkdir(parents=True, exist_ok=True)
    if task.pretrain_corpus is not None:
        shutil.copyfile(task.pretrain_corpus, out_dir / PRETRAIN_CORPUS)
    else:  # as the datasets task does: a small model can still be pretrained on the task's own texts
        write_jsonl(out_dir / PRETRAIN_CORPUS, corpus_from_training(filled["sft_train"], filled["preference_train"]))
    layout = Layout.build(sets)
    write_json(out_dir / TASK_INFO, {"task": "files", "gold_reward": None, "sizes": sizes, "derived": derived,
                                     "sets": layout.to_json()})
    return {"sizes": sizes, "derived": derived}
