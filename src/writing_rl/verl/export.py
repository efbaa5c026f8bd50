"""Our samples as verl's RL parquet: one row per prompt, in the layout of verl's `examples/data_preprocess`.

verl's `RLHFDataset` reads `prompt` (chat messages) and passes `data_source`, `reward_model.ground_truth` and
`extra_info` to the reward function, nothing else of the row. So `extra_info` carries everything our reward
needs: the sample key, the references (weakest first), the criteria, the target length, the position `index`
(verl groups rollouts by it), the split, and the whole sample as JSON so the reward rebuilds it losslessly
(criteria with their score bands, extra fields a rule judge reads). `ground_truth` is the strongest reference.

Only pyarrow is needed (no verl, no Ray), so the export also runs in the main environment.

The output folder ends up holding exactly what this export produced: an earlier export's `val.parquet`
(or a half-written `*.parquet.tmp`) that this one does not write is removed, so verl never validates on a
stale split. Files export-verl does not write are never touched; they are listed in the result (and the
command says so).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import Sample

DATA_SOURCE = "writing_rl"
ABILITY = "writing"
TRAIN_FILE = "train.parquet"
VAL_FILE = "val.parquet"


class ExportError(ValueError):
    """Bad export options or inputs; the message is one line."""

    exit_code = 2  # an option or input to fix


def _schema():  # type: ignore[no-untyped-def]
    """Explicit types: a column that is null in every row (no criteria anywhere) must still be a string."""
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(message)),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            (
                "extra_info",
                pa.struct(
                    [
                        ("split", pa.string()),
                        ("index", pa.int64()),
                        ("sample_key", pa.string()),
                        ("references", pa.list_(pa.string())),
                        ("criteria", pa.string()),
                        ("length", pa.int64()),
                        ("lang", pa.string()),
                        ("sample", pa.string()),
                    ]
                ),
            ),
        ]
    )


def chat_messages(sample: Sample) -> list[dict[str, str]]:
    """The prompt as chat messages (a text prompt becomes one user turn)."""
    if isinstance(sample.prompt, str):
        return [{"role": "user", "content": sample.prompt}]
    return [{"role": m.role, "content": m.content} for m in sample.prompt]


def verl_row(sample: Sample, index: int, split: str, data_source: str = DATA_SOURCE) -> dict[str, Any]:
    return {
        "data_source": data_source,
        "prompt": chat_messages(sample),
        "ability": ABILITY,
        "reward_model": {"style": "model", "ground_truth": sample.references[-1]},
        "extra_info": {
            "split": split,
            "index": index,
            "sample_key": sample.key,
            "references": list(sample.references),
            "criteria": sample.criteria_text,
            "length": sample.length,
            "lang": sample.lang,
            "sample": sample.model_dump_json(),
        },
    }


def sample_from_extra_info(extra_info: dict[str, Any]) -> Sample:
    """The sample a row was exported from (what the reward function judges against)."""
    try:
        return Sample.model_validate_json(extra_info["sample"])
    except (KeyError, TypeError) as err:
        raise ExportError(
            f"extra_info has no exported sample ({err}): export the data with `writing-rl export-verl`"
        ) from None


def read_exported(paths: Sequence[str | Path]) -> list[Sample]:
    """The samples `export_verl` stored in these parquet files, in row order (the cost estimate and the
    judge audit of a verl recipe read its training data so)."""
    import pyarrow.parquet as pq

    return [
        sample_from_extra_info(row)
        for path in paths
        for row in pq.read_table(Path(path).expanduser(), columns=["extra_info"]).column("extra_info").to_pylist()
    ]


def write_parquet(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write to a temporary file, then move it in place: a reader never sees half a file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(pa.Table.from_pylist(list(rows), schema=_schema()), tmp)
    tmp.replace(path)


def held_out(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(train, validation): a seeded random `fraction` of the samples held out, both kept in file order."""
    if not 0 < fraction < 1:
        raise ExportError(f"--val-fraction must be between 0 and 1 (exclusive), got {fraction}")
    n_val = round(fraction * len(samples))
    if n_val == 0 or n_val == len(samples):
        raise ExportError(
            f"--val-fraction {fraction} of {len(samples)} samples leaves "
            f"{'no validation' if n_val == 0 else 'no training'} sample"
        )
    chosen = set(random.Random(seed).sample(range(len(samples)), n_val))
    train = [s for i, s in enumerate(samples) if i not in chosen]
    return train, [s for i, s in enumerate(samples) if i in chosen]


@dataclass(frozen=True)
class ExportResult:
    train_path: Path
    train_count: int
    val_path: Path | None
    val_count: int
    removed: tuple[Path, ...] = ()  # an earlier export's files this one does not produce
    others: tuple[Path, ...] = ()  # files in the folder that export-verl did not write: left as they are


def written_by_export(path: Path) -> bool:
    """Whether a parquet file has the layout `export_verl` writes (so a later export may replace it)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path).equals(_schema())
    except Exception:  # not parquet at all, unreadable: not ours
        return False


def _clean_folder(out: Path, produced: set[str]) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """Remove what an earlier export left that this one did not produce; (removed, others)."""
    removed, others = [], []
    for path in sorted(out.iterdir()):
        if path.name in produced:
            continue
        ours = path.is_file() and (
            path.name in (f"{TRAIN_FILE}.tmp", f"{VAL_FILE}.tmp")  # a killed export's half file
            or (path.name == VAL_FILE and written_by_export(path))
        )
        if ours:
            path.unlink()
            removed.append(path)
        else:
            others.append(path)
    return tuple(removed), tuple(others)


def export_verl(
    train: Sequence[Sample],
    out_dir: str | Path,
    val: Sequence[Sample] | None = None,
    val_fraction: float | None = None,
    seed: int = 0,
    data_source: str = DATA_SOURCE,
) -> ExportResult:
    """Write `train.parquet` (and `val.parquet` from `val` or a held-out `val_fraction`) into `out_dir`, and
    remove an earlier export's `val.parquet` that this export does not replace (see the module's doc)."""
    if val is not None and val_fraction is not None:
        raise ExportError("give either a validation file or --val-fraction, not both")
    if not train:
        raise ExportError("no training samples to export")
    if val_fraction is not None:
        train, val = held_out(train, val_fraction, seed)
    if val is not None:
        shared = sorted({s.key for s in train} & {s.key for s in val})
        if shared:
            raise ExportError(
                f"{len(shared)} sample id(s) in both the training and validation data (first: {shared[0]}): "
                "a validation prompt must not be trained on"
            )
    out = Path(out_dir)
    train_path = out / TRAIN_FILE
    write_parquet([verl_row(s, i, "train", data_source) for i, s in enumerate(train)], train_path)
    val_path = None
    if val:
        val_path = out / VAL_FILE
        write_parquet([verl_row(s, i, "val", data_source) for i, s in enumerate(val)], val_path)
    removed, others = _clean_folder(out, {TRAIN_FILE} | ({VAL_FILE} if val_path else set()))
    return ExportResult(train_path, len(train), val_path, len(val or ()), removed, others)
