import json

import pytest

from rlhflab.data.records import PreferenceRecord, RecordError, SFTRecord, read_records, write_jsonl


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


@pytest.mark.parametrize("row, needle", [
    ({"prompt": "p", "chosen": "a"}, "missing field 'rejected'"),
    ({"prompt": "p", "chosen": "a", "rejected": "a"}, "identical"),
    ({"prompt": "p", "chosen": "  ", "rejected": "b"}, "'chosen' is empty"),
    ({"prompt": "p", "chosen": 3, "rejected": "b"}, "must be a string"),
    ({"prompt": "p", "chosen": "a", "rejected": "b", "score": 1}, "unknown field"),
    ('{"prompt": "p", "chosen": ', "not valid JSON"),
])
def test_bad_preference_records_name_file_and_line(tmp_path, row, needle):
    f = tmp_path / "prefs.jsonl"
    _write(f, [{"prompt": "ok", "chosen": "a", "rejected": "b"}, row])
    with pytest.raises(RecordError) as e:
        read_records(f, PreferenceRecord)
    assert str(f) in str(e.value) and "line 2" in str(e.value) and needle in str(e.value)


def test_roundtrip_and_ids(tmp_path):
    f = tmp_path / "sft.jsonl"
    write_jsonl(f, [SFTRecord("p1", "c1", "x"), {"prompt": "p2", "completion": "c2"}])
    recs = read_records(f, SFTRecord)
    assert [r.completion for r in recs] == ["c1", "c2"]
    assert recs[0].id == "x" and recs[1].id == "sft-2"
    assert not list(tmp_path.glob(".*tmp"))


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    f = tmp_path / "x.jsonl"
    write_jsonl(f, [{"prompt": "a", "completion": "b"}])

    def rows():
        yield {"prompt": "c", "completion": "d"}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(f, rows())
    assert read_records(f, SFTRecord)[0].prompt == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]


def test_non_utf8_bytes_name_file_line_and_column(tmp_path):
    f = tmp_path / "sft.jsonl"
    f.write_bytes(b'{"prompt": "p", "completion": "c"}\n{"prompt": "caf\xe9", "completion": "c"}\n')
    with pytest.raises(RecordError, match=r"sft.jsonl line 2: not UTF-8 text \(byte 0xe9 at column 16\); save"):
        read_records(f, SFTRecord)


def test_a_bom_is_accepted_and_json_errors_read_cleanly(tmp_path):
    f = tmp_path / "sft.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"prompt": "p", "completion": "c"}\n')
    assert read_records(f, SFTRecord)[0].prompt == "p"
    f.write_text('{"prompt": "unterminated\n')
    with pytest.raises(RecordError) as e:
        read_records(f, SFTRecord)
    assert "at at" not in str(e.value) and "not valid JSON: Unterminated string starting at (column 12)" in str(e.value)
    with pytest.raises(RecordError, match="is a directory"):
        read_records(tmp_path, SFTRecord)
