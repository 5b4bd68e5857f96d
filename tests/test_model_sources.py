"""A model the config names that cannot be loaded is a config error in seconds, naming the key."""

import time

from typer.testing import CliRunner

from rlhflab.cli import app
from rlhflab.model_sources import source_problem


def test_local_folders_files_and_hub_names_are_checked_by_what_they_are(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    assert source_problem("model.name_or_path", str(model)) == (
        f"model.name_or_path: {model} has no config.json, so it is not a Hugging Face model folder (save one with "
        "save_pretrained)")
    (model / "config.json").write_text("{}")
    assert source_problem("model.name_or_path", str(model)) is None
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert source_problem("model.name_or_path", str(gguf)) is None
    assert source_problem("k", str(tmp_path / "notes.txt")) == f"k: no such folder {tmp_path / 'notes.txt'} " \
                                                                "(and it is not a hub name); fix the path"
    assert source_problem("k", "./typo") == "k: no such folder ./typo (and it is not a hub name); fix the path"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    assert source_problem("eval.local_model", "org/judge-7b") == (
        "eval.local_model: 'org/judge-7b' is a hub name, HF_HUB_OFFLINE is set and it is not in the hub cache; "
        "run once with a network (unset HF_HUB_OFFLINE), or point the key at a local folder")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert source_problem("eval.local_model", "org/judge-7b") is None  # online: the hub answers at load time


def test_the_cli_names_every_bad_model_key_at_once_and_exits_2_in_seconds(tmp_path):
    started = time.monotonic()
    res = CliRunner().invoke(app, ["run", "--seeds", "1", "--set", f"output_dir={tmp_path}",
                                   "--set", "model.name_or_path=./no-such-model", "--set", "eval.judge=local",
                                   "--set", f"eval.local_model={tmp_path}"])
    assert res.exit_code == 2
    said = " ".join(res.output.split())
    assert said.startswith("error: models the config names cannot be loaded: model.name_or_path: no such folder "
                           "./no-such-model")
    assert f"eval.local_model: {tmp_path} has no config.json" in said and "output_dir" not in said
    assert time.monotonic() - started < 30 and not any(p.name != ".cache" for p in tmp_path.iterdir())
