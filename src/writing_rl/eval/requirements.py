"""WritingBench's requirement scores, as its `calculate_scores.py` computes them from its
`benchmark_query/requirement/` folder.

For each requirement (style, format, length) the folder holds `{req}/{req}_subset.jsonl`, the queries
that state such a requirement (the "R" subset: only their `index` is read), and `{req}/{req}_subset_C.jsonl`,
the same queries with only the criteria that check that requirement (the "C" subset: the `name` of each
`checklist` entry is read, by `index`). From the scores of a run over the whole benchmark:

- `R`: the mean, over the R file's indices that were scored (in file order, a repeated index counting twice),
  of each query's mean criterion score.
- `C`: the flat mean, over the same scored indices, of the scores of the criteria the C file names for them.

Both are × 10 here, like every WritingBench number in our results (the official sheet keeps 1-10). Where the
official script stops with an error, these numbers do not: a missing file leaves that number out, a scored
index absent from the C file or a named criterion the query does not have adds nothing (both counted in
`unmatched`); an empty subset is None (the official sheet shows 0).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..jsonl import read_jsonl

REQUIREMENTS = ("style", "format", "length")


@dataclass(frozen=True)
class RequirementSubset:
    """One requirement's R indices (None: no R file) and the criterion names its C file gives per index."""

    indices: list[Any] | None
    criteria: dict[Any, list[str]] | None


def load_requirements(folder: str | Path) -> dict[str, RequirementSubset]:
    """The requirements whose R or C file the folder holds, in the official layout; read before any generation,
    so a file of another shape stops the task at once (`ValueError` naming it)."""
    out = {}
    for req in REQUIREMENTS:
        r_file, c_file = (Path(folder) / req / f"{req}_subset{tail}.jsonl" for tail in ("", "_C"))
        indices = _read(r_file, lambda row: row["index"])
        criteria = _read(c_file, lambda row: (row["index"], [c["name"] for c in row["checklist"]]))
        if indices is not None or criteria is not None:
            out[req] = RequirementSubset(indices, None if criteria is None else dict(criteria))
    return out


def _read(path: Path, field: Callable[[dict[str, Any]], Any]) -> list[Any] | None:
    if not path.is_file():
        return None
    try:
        return [field(row) for row in read_jsonl(path)]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a WritingBench requirement file (a record lacks {err})") from err


def requirement_scores(
    subsets: dict[str, RequirementSubset], query_means: dict[Any, float], per_criterion: dict[Any, dict[str, float]]
) -> dict[str, dict[str, Any]]:
    """Per requirement: R and C (× 10), the queries and criteria behind them, and what did not match.

    `query_means` and `per_criterion`, by index: each fully scored query's mean, and its criterion scores by
    name (for a name given twice, the first: the official scorer scores a repeated name once)."""
    out = {}
    for req, subset in subsets.items():
        if subset.indices is None:  # the official C loop runs over the R file's indices
            out[req] = {"R": None, "n_R": 0, "C": None, "n_C": 0, "unmatched": 0}
            continue
        scored = [i for i in subset.indices if i in query_means]
        means = [query_means[i] for i in scored]
        named, unmatched = [], 0
        for i in scored:
            names = (subset.criteria or {}).get(i)
            unmatched += names is None and subset.criteria is not None
            for name in names or []:
                if name in per_criterion[i]:
                    named.append(per_criterion[i][name])
                else:
                    unmatched += 1
        out[req] = {
            "R": 10 * statistics.fmean(means) if means else None,
            "n_R": len(means),
            "C": 10 * statistics.fmean(named) if named else None,
            "n_C": len(named),
            "unmatched": unmatched,
        }
    return out
