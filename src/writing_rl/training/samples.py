"""The training samples: the embedded demo, a samples file or a `datasets` dataset, each failure one line."""

from __future__ import annotations

from pathlib import Path

from ..data import Sample, SampleFileError, load_samples
from ..errors import ConfigError
from ..jsonl import JsonlFileError
from .config import DEMO_DATASET, DEMO_SAMPLES, TrainConfig

DATA_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt")


def load_train_samples(cfg: TrainConfig) -> list[Sample]:
    """The training samples; a missing file or a dataset `datasets` cannot load is a one-line `ConfigError`."""
    if cfg.dataset == DEMO_DATASET:
        return load_samples(str(DEMO_SAMPLES))
    local = Path(cfg.dataset).expanduser()
    if not local.exists() and (cfg.dataset.endswith(DATA_FILE_SUFFIXES) or cfg.dataset.startswith(("/", ".", "~"))):
        raise ConfigError(f"dataset: {cfg.dataset}: no such file (give a samples .jsonl, a dataset folder or 'demo')")
    try:
        return load_samples(cfg.dataset, split=cfg.dataset_split)
    except (SampleFileError, JsonlFileError):
        raise
    except Exception as err:  # datasets raises many kinds (missing split, no network, bad format)
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise ConfigError(
            f"dataset: {cfg.dataset}: datasets.load_dataset could not load it ({type(err).__name__}: {first})"
        ) from None
