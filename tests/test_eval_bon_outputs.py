"""eval takes best-of-N's outputs from the bon stage only where they cover its inputs, in order."""

from types import SimpleNamespace

from rlhflab.data.records import write_jsonl
from rlhflab.stages.eval import bon_stage_outputs


def _ctx(tmp_path):
    return SimpleNamespace(input=lambda stage: tmp_path / stage)


def _recs(*ids):
    return [SimpleNamespace(id=i, prompt=f"prompt {i}") for i in ids]


def test_bon_outputs_are_reused_when_they_cover_every_input_in_order(tmp_path):
    write_jsonl(tmp_path / "bon" / "outputs" / "id.jsonl", [{"id": i, "output": f"best {i}"} for i in "abc"])
    write_jsonl(tmp_path / "bon" / "outputs" / "ood.jsonl", [{"id": i, "output": f"best {i}"} for i in "xy"])
    got = bon_stage_outputs(_ctx(tmp_path), {"id": _recs("a", "b"), "ood": _recs("x", "y")})
    assert got == {"id": ["best a", "best b"], "ood": ["best x", "best y"]}


def test_eval_draws_its_own_when_the_bon_stage_covered_fewer_or_other_inputs(tmp_path):
    write_jsonl(tmp_path / "bon" / "outputs" / "id.jsonl", [{"id": i, "output": f"best {i}"} for i in "ab"])
    ctx = _ctx(tmp_path)
    assert bon_stage_outputs(ctx, {"id": _recs("a", "b", "c")}) is None  # bon.max_prompts_per_test_set smaller
    assert bon_stage_outputs(ctx, {"id": _recs("b", "a")}) is None  # another order
    assert bon_stage_outputs(ctx, {"id": _recs("a"), "ood": _recs("x")}) is None  # a set it never wrote
