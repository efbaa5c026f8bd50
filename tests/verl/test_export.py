"""`writing-rl export-verl`: our samples as verl's RL parquet, read back by verl's own RLHFDataset."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner
from verl_samples import write_samples

from writing_rl.cli import app
from writing_rl.data import load_jsonl
from writing_rl.verl.export import sample_from_extra_info

SAMPLES = [
    {"id": 7, "prompt": "write a note", "references": ["thanks", "thanks for your help"], "length": 80, "lang": "en"},
    {
        "id": "7",  # a string id next to the int 7: two different samples
        "prompt": [
            {"role": "system", "content": "a poem"},
            {"role": "user", "content": "write a poem about the sea"},
        ],
        "references": ["sea", "the sea", "the sea answer"],
        "criteria": [{"name": "imagery", "criteria_description": "vivid sea", "9-10": "striking"}, "rhythm"],
    },
    {"id": 3, "prompt": "write a story", "references": ["a story"], "criteria": "plot first"},
    {"id": 4, "prompt": "write the answer", "references": ["answer", "the answer"]},
]


def export(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["export-verl", *args])


def test_rows_follow_verl_layout_and_rlhf_dataset_reads_them(tmp_path, tiny_tokenizer):
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    src = write_samples(tmp_path / "s.jsonl", SAMPLES)
    result = export(str(src), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "4 training samples" in result.output and "no validation split" in result.output

    table = pq.read_table(tmp_path / "out" / "train.parquet")
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    rows = table.to_pylist()
    originals = load_jsonl(src)
    for i, (row, sample) in enumerate(zip(rows, originals)):
        assert row["data_source"] == "writing_rl" and row["ability"] == "writing"
        assert row["reward_model"] == {"style": "model", "ground_truth": sample.references[-1]}
        info = row["extra_info"]
        assert (info["index"], info["split"], info["sample_key"]) == (i, "train", sample.key)
        assert info["references"] == sample.references
        assert info["criteria"] == sample.criteria_text
        assert info["length"] == sample.length
        assert sample_from_extra_info(info) == sample  # lossless: criteria bands, typed ids
    assert rows[0]["prompt"] == [{"role": "user", "content": "write a note"}]
    assert [m["role"] for m in rows[1]["prompt"]] == ["system", "user"]
    assert [r["extra_info"]["sample_key"] for r in rows[:2]] == ["7", '"7"']

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    config = OmegaConf.create(
        {
            "prompt_key": "prompt",
            "max_prompt_length": 64,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": 1,
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    dataset = RLHFDataset(str(tmp_path / "out" / "train.parquet"), tok, config)
    assert len(dataset) == 4  # none dropped as overlong or unreadable
    item = dataset[1]
    assert list(item["raw_prompt"]) == rows[1]["prompt"]
    assert item["index"] == 1 and item["data_source"] == "writing_rl"
    assert sample_from_extra_info(item["extra_info"]) == originals[1]
    assert item["reward_model"]["ground_truth"] == "the sea answer"


def test_validation_by_fraction_is_seeded_and_disjoint(tmp_path):
    src = write_samples(tmp_path / "s.jsonl", SAMPLES)

    def keys(out: str, name: str) -> list[str]:
        return [r["extra_info"]["sample_key"] for r in pq.read_table(tmp_path / out / name).to_pylist()]

    for out in ("a", "b"):
        result = export(str(src), "--out", str(tmp_path / out), "--val-fraction", "0.5", "--seed", "3")
        assert result.exit_code == 0, result.output
    train, val = keys("a", "train.parquet"), keys("a", "val.parquet")
    assert len(train) == len(val) == 2 and not set(train) & set(val)
    assert set(train) | set(val) == {json.dumps(s["id"]) for s in SAMPLES}
    assert (keys("b", "train.parquet"), keys("b", "val.parquet")) == (train, val)  # same seed, same split
    val_rows = pq.read_table(tmp_path / "a" / "val.parquet").to_pylist()
    assert [(r["extra_info"]["split"], r["extra_info"]["index"]) for r in val_rows] == [("val", 0), ("val", 1)]


def test_validation_file(tmp_path):
    src = write_samples(tmp_path / "s.jsonl", SAMPLES[:3])
    val = write_samples(tmp_path / "v.jsonl", SAMPLES[3:])
    result = export(str(src), "--out", str(tmp_path / "o"), "--val", str(val))
    assert result.exit_code == 0, result.output
    assert "1 validation samples" in result.output
    assert pq.read_table(tmp_path / "o" / "val.parquet").to_pylist()[0]["extra_info"]["sample_key"] == "4"


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--val-fraction", "0.1"], 2, "leaves no validation sample"),
        (["--val-fraction", "1.5"], 2, "between 0 and 1"),
        (["--val-fraction", "0.5", "--val", "SAME"], 2, "not both"),
        (["--val", "SAME"], 2, "in both the training and validation data"),
        (["--val", "MISSING"], 2, "no such sample file"),
    ],
)
def test_bad_options_fail_in_one_line(tmp_path, extra, code, message):
    src = write_samples(tmp_path / "s.jsonl", SAMPLES)
    extra = [str(src) if a == "SAME" else str(tmp_path / "nope.jsonl") if a == "MISSING" else a for a in extra]
    result = export(str(src), "--out", str(tmp_path / "o"), *extra)
    assert result.exit_code == code
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "train.parquet").exists()


def test_bad_sample_line_is_named(tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_text(json.dumps(SAMPLES[0]) + "\n" + json.dumps({"id": 9, "prompt": "x"}) + "\n", encoding="utf-8")
    result = export(str(src), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "line 2" in result.output and "references" in result.output


def test_a_later_export_leaves_only_its_own_files(tmp_path):
    src = write_samples(tmp_path / "s.jsonl", SAMPLES)
    out = tmp_path / "o"
    assert export(str(src), "--out", str(out), "--val-fraction", "0.5").exit_code == 0
    (out / "notes.txt").write_text("the user's own file")
    (out / "train.parquet.tmp").write_bytes(b"half a file from a killed export")
    result = export(str(src), "--out", str(out))  # no validation this time
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "train.parquet"]  # no stale val.parquet
    assert f"removed {out / 'val.parquet'}" in result.output
    assert "also holds 1 file(s) export-verl did not write (notes.txt): left as they are" in result.output
    assert len(pq.read_table(out / "train.parquet")) == len(SAMPLES)


def test_a_val_parquet_export_verl_did_not_write_is_kept(tmp_path):
    import pyarrow as pa

    src = write_samples(tmp_path / "s.jsonl", SAMPLES)
    out = tmp_path / "o"
    out.mkdir()
    pq.write_table(pa.table({"question": ["2+2"], "answer": ["4"]}), out / "val.parquet")  # another tool's split
    before = (out / "val.parquet").read_bytes()
    result = export(str(src), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "val.parquet").read_bytes() == before and "(val.parquet): left as they are" in result.output
