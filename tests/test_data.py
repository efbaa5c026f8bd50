import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from writing_rl.cli import app
from writing_rl.data import Sample, SampleFileError, load_hf, load_jsonl, load_samples, sample_key, validate_jsonl
from writing_rl.training.config import DEMO_SAMPLES

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
runner = CliRunner()

GOOD = {"id": 1, "prompt": "Write a poem.", "references": ["weak", "strong"]}

# Ten kinds of bad line, each with the words its error message must contain.
BAD_LINES = [
    ('{"id": 2, "prompt": "x", "references": ["a"]', "bad JSON"),
    ('["not", "an", "object"]', "expected a JSON object"),
    ('{"prompt": "x", "references": ["a"]}', "missing field 'id'"),
    ('{"id": 4, "references": ["a"]}', "missing field 'prompt'"),
    ('{"id": 5, "prompt": "x", "references": []}', "references"),
    ('{"id": 1, "prompt": "x", "references": ["a"]}', "duplicate id 1"),
    ('{"id": 7.5, "prompt": "x", "references": ["a"]}', "field 'id'"),
    ('{"id": 8, "prompt": "x", "references": ["a", 3]}', "references.1"),
    ('{"id": 9, "prompt": "x", "references": ["a", "b"], "reference_scores": [7, 3]}', "out of order"),
    ('{"id": 10, "prompt": "x", "references": ["a"], "length": -5}', "field 'length'"),
    ('{"id": 11, "prompt": "x", "references": ["a", "b"], "reference_scores": [1]}', "reference_scores has 1"),
    ('{"id": 12, "prompt": [{"role": "robot", "content": "hi"}], "references": ["a"]}', "prompt"),
    ('{"id": true, "prompt": "x", "references": ["a"]}', "field 'id'"),
]


def write_lines(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "samples.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_demo_samples_are_valid_and_bilingual():
    samples = load_jsonl(Path(str(DEMO_SAMPLES)))
    assert len(samples) >= 8
    assert {s.lang for s in samples} == {"en", "zh"}
    assert all(len(s.references) >= 2 for s in samples)


def test_every_bad_line_is_reported_by_line_number(tmp_path):
    path = write_lines(tmp_path, [json.dumps(GOOD)] + [line for line, _ in BAD_LINES])
    report = validate_jsonl(path)
    assert len(report.samples) == 1
    by_line = {e.line: e.message for e in report.errors}
    assert sorted(by_line) == list(range(2, 2 + len(BAD_LINES)))
    for offset, (_, expected) in enumerate(BAD_LINES):
        assert expected in by_line[2 + offset], (expected, by_line[2 + offset])


def test_cli_validate_fails_naming_each_line_and_writes_nothing(tmp_path):
    path = write_lines(tmp_path, [json.dumps(GOOD)] + [line for line, _ in BAD_LINES])
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    for n in range(2, 2 + len(BAD_LINES)):
        assert f"{path}:{n}:" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_validate_counts_good_file():
    result = runner.invoke(app, ["validate", str(DEMO_SAMPLES)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{len(load_jsonl(Path(str(DEMO_SAMPLES))))} samples OK"


def test_cli_validate_missing_file(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2


@pytest.mark.skipif(not (SHARED / "writingbench_length.jsonl").is_file(), reason="../shared/data not present")
def test_real_writingbench_prompts_as_samples(tmp_path):
    """Real benchmark prompts (long, English and Chinese) with their checklists as criteria."""
    rows = [
        json.loads(line) for line in (SHARED / "writingbench_length.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    out = tmp_path / "wb.jsonl"
    with out.open("w", encoding="utf-8") as fh:
        for row in rows:
            criteria = [f"{c['name']}: {c['criteria_description']}" for c in row["checklist"]]
            sample = {"id": row["index"], "prompt": row["query"], "references": ["r1", "r2"], "criteria": criteria}
            fh.write(json.dumps(sample, ensure_ascii=False) + "\n")
    result = runner.invoke(app, ["validate", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{len(rows)} samples OK"
    samples = load_jsonl(out)
    assert samples[0].criteria_text.startswith("- ")


def test_load_jsonl_raises_with_all_errors(tmp_path):
    path = write_lines(tmp_path, [json.dumps(GOOD), BAD_LINES[0][0], BAD_LINES[2][0]])
    with pytest.raises(SampleFileError) as info:
        load_jsonl(path)
    assert [e.line for e in info.value.errors] == [2, 3]


def test_ids_keep_their_type():
    assert sample_key(5) != sample_key("5")
    assert Sample(id=5, prompt="p", references=["r"]).key == "5"
    assert Sample(id="5", prompt="p", references=["r"]).key == '"5"'


def test_int_and_string_ids_with_same_digits_are_not_duplicates(tmp_path):
    path = write_lines(
        tmp_path,
        [json.dumps({**GOOD, "id": 5}), json.dumps({**GOOD, "id": "5"})],
    )
    assert len(load_jsonl(path)) == 2


def test_chat_prompt_and_optional_fields():
    s = Sample(
        id="a",
        prompt=[{"role": "system", "content": "Be vivid."}, {"role": "user", "content": "Describe rain."}],
        references=["r0", "r1"],
        criteria=["vivid", "concise"],
        lang="en",
        length=100,
        reference_scores=[3.0, None],
    )
    assert "Describe rain." in s.prompt_text
    assert s.criteria_text == "- vivid\n- concise"


def test_load_from_hf_dataset_object_and_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"id": i, "prompt": f"p{i}", "references": ["a", "b"]} for i in range(3)]
    ds = datasets.Dataset.from_list(rows)
    assert [s.id for s in load_hf(ds)] == [0, 1, 2]
    ds.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert len(load_samples(str(tmp_path / "files"))) == 3


def test_hf_dataset_errors_name_rows():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(
        [{"id": 1, "prompt": "p", "references": ["a"]}, {"id": 1, "prompt": "p", "references": ["a"]}]
    )
    with pytest.raises(SampleFileError, match="row 2: duplicate id 1"):
        load_hf(ds)


def _bad_bytes_file(tmp_path: Path) -> Path:
    """Line 2 holds a Latin-1 é (invalid UTF-8); lines 1 and 3 are good samples."""
    path = tmp_path / "latin1.jsonl"
    good = [json.dumps({**GOOD, "id": i}).encode() for i in (1, 3)]
    path.write_bytes(good[0] + b"\n" + b'{"id": 2, "prompt": "caf\xe9", "references": ["x"]}\n' + good[1] + b"\n")
    return path


def test_cli_validate_names_the_line_with_invalid_utf8_and_reads_the_rest(tmp_path):
    path = _bad_bytes_file(tmp_path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # an error, not a traceback
    assert f"{path}:2: not valid UTF-8 (byte 0xe9 at byte 25 of the line)" in result.output
    assert "1 bad line(s), 2 good" in result.output


def test_cli_validate_reports_a_binary_file_in_one_line(tmp_path):
    path = tmp_path / "model.jsonl"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 40)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith(str(path))]
    assert errors == [f"{path}:1: binary data (a NUL byte at byte 4 of the line), not UTF-8 text"]


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    assert validate_jsonl(path).ok


def test_prompt_and_row_files_with_bad_bytes_fail_in_one_line_naming_the_line(tmp_path):
    """build-refs reads a prompt file, eval a LongBench-Write file: each stops with one line and exit 1."""
    from writing_rl.prompts import load_prompts

    prompts = _bad_bytes_file(tmp_path)
    with pytest.raises(SampleFileError) as info:
        load_prompts(prompts)
    assert (
        str(info.value)
        == f"{prompts}: line 2: not valid UTF-8 (byte 0xe9 at byte 25 of the line): save the file as UTF-8"
    )
    closed = "http://127.0.0.1:9/v1"
    build = tmp_path / "build.yaml"
    build.write_text(
        f"prompts: {prompts}\ngenerators: [{{name: g, endpoint: {{base_url: '{closed}'}}}}]\n"
        f"work_dir: {tmp_path / 'w'}\noutput: {tmp_path / 'refs.jsonl'}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["build-refs", str(build)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.strip().splitlines() == [str(info.value)]
    rows = tmp_path / "lbw.jsonl"
    rows.write_bytes(b'{"prompt": "ok", "length": 10}\n{"prompt": "\xff\xfe", "length": 5}\n')
    ev = tmp_path / "eval.yaml"
    ev.write_text(
        f"model: {{name: m, endpoint: {{base_url: '{closed}'}}}}\noutput_dir: {tmp_path / 'ev'}\n"
        f"tasks: {{longbench_write: {{path: {rows}}}}}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["eval", str(ev)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.strip().splitlines() == [
        f"{rows}:2: not valid UTF-8 (byte 0xff at byte 13 of the line): save the file as UTF-8"
    ]


# A misspelt optional field is kept as an extra field (extra fields are kept by design), so the sample is valid
# but the field is unset: `validate` warns once per field, naming its first line and how many lines have it.
TYPOS = [
    json.dumps(GOOD),
    json.dumps({**GOOD, "id": 2, "critera": "rhyme", "lenght": 300}),
    json.dumps({**GOOD, "id": 3, "critera": "meter", "reference_score": [1, 2]}),
    json.dumps({**GOOD, "id": 4, "prompt_id": "p4", "source": "mine", "criteria": "x", "criterias": "y"}),
]


def test_misspelt_fields_are_warned_once_per_field_with_a_line_count(tmp_path):
    report = validate_jsonl(write_lines(tmp_path, TYPOS))
    assert report.ok and len(report.samples) == 4
    assert [str(w) for w in report.warnings] == [
        "line 2: unknown field 'critera' (did you mean 'criteria'?), on 2 lines; kept as an extra field, so "
        "'criteria' is unset there",
        "line 2: unknown field 'lenght' (did you mean 'length'?), on 1 line; kept as an extra field, so "
        "'length' is unset there",
        "line 3: unknown field 'reference_score' (did you mean 'reference_scores'?), on 1 line; kept as an extra "
        "field, so 'reference_scores' is unset there",
    ]  # line 4: prompt_id and criterias sit beside the fields they resemble, source resembles none: extra fields


def test_cli_validate_warns_about_misspelt_fields_and_still_exits_0(tmp_path):
    path = write_lines(tmp_path, TYPOS)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"warning: {path}: line 2: unknown field 'critera' (did you mean 'criteria'?), on 2 lines" in result.output
    assert result.output.count("unknown field") == 3
    assert "4 samples OK (3 warning(s) above)" in result.stdout
    # with errors too: both are shown, and the errors decide the exit status
    result = runner.invoke(app, ["validate", str(write_lines(tmp_path, [*TYPOS, BAD_LINES[2][0]]))])
    assert result.exit_code == 1 and "missing field 'id'" in result.output and "unknown field 'lenght'" in result.output


def test_loaders_raise_a_sample_field_warning_naming_the_file(tmp_path):
    from datasets import Dataset

    from writing_rl.data import SampleFieldWarning

    path = write_lines(tmp_path, TYPOS[:2])
    with pytest.warns(SampleFieldWarning) as caught:
        assert len(load_jsonl(path)) == 2
    assert [str(w.message) for w in caught] == [
        f"{path}: line 2: unknown field 'critera' (did you mean 'criteria'?), on 1 line; kept as an extra field, "
        "so 'criteria' is unset there",
        f"{path}: line 2: unknown field 'lenght' (did you mean 'length'?), on 1 line; kept as an extra field, "
        "so 'length' is unset there",
    ]
    with pytest.warns(SampleFieldWarning, match="dataset: row 1: unknown field 'lenght'"):
        load_hf(Dataset.from_list([{**GOOD, "lenght": 3}]))
