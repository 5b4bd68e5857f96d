"""Every key a stage reads moves its cache key, and no other key does: checked for every registered
stage and every key it reads (a digest that dropped one key would reuse a stale artefact)."""

import pytest

from rlhflab import cache_key
from rlhflab.config import load_config
from rlhflab.stages import REGISTRY
from rlhflab.sweep import key_reads

CFG = load_config("quickstart")
REAL = cache_key.config_value


def _digest_with(monkeypatch, reads, changed: str | None) -> str:
    """The stage's config digest with the value at `changed` replaced by one no config holds."""
    monkeypatch.setattr(cache_key, "config_value",
                        lambda cfg, key: "<another value>" if key == changed else REAL(cfg, key))
    return cache_key.config_digest(CFG, reads)


@pytest.mark.parametrize("stage", REGISTRY, ids=lambda s: s.name)
def test_each_key_a_stage_reads_changes_its_digest_and_no_other_key_does(monkeypatch, stage):
    reads = key_reads(stage)
    assert len(set(reads)) == len(reads) and reads[-1] == "model.inference_autocast"
    base = _digest_with(monkeypatch, reads, None)
    digests = {key: _digest_with(monkeypatch, reads, key) for key in reads}
    assert all(d != base for d in digests.values()), [k for k, d in digests.items() if d == base]
    assert len(set(digests.values())) == len(reads)  # and each key moves it its own way
    assert _digest_with(monkeypatch, reads, "a.key.nobody.reads") == base


def test_the_stage_key_follows_the_config_digest_inputs_and_files(tmp_path):
    reads = ("seed", "sft.optim.lr")
    key = cache_key.stage_key("sft", "rlhflab.stages.sft", CFG, reads, {"data": "x"}, [])
    assert key == cache_key.stage_key("sft", "rlhflab.stages.sft", CFG, reads, {"data": "x"}, [])
    other = CFG.model_copy(update={"seed": 7})
    assert key != cache_key.stage_key("sft", "rlhflab.stages.sft", other, reads, {"data": "x"}, [])
    assert key != cache_key.stage_key("sft", "rlhflab.stages.sft", CFG, reads, {"data": "y"}, [])
    f = tmp_path / "data.jsonl"
    f.write_text("{}\n")
    with_file = cache_key.stage_key("sft", "rlhflab.stages.sft", CFG, reads, {"data": "x"}, [str(f)])
    f.write_text("{}\n{}\n")
    assert with_file != cache_key.stage_key("sft", "rlhflab.stages.sft", CFG, reads, {"data": "x"}, [str(f)])
