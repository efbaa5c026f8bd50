"""Several training processes against one judge: the configured `max_concurrency` is the endpoint's total,
the judge metrics are totals over the ranks, and each rank's judge cache is a file of its own.

The two-process tests run `tests/rank_worker.py` under torchrun (gloo on the CPU), against a loopback
judge that counts the requests it is answering at once.
"""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer, chat_reply
from torchrun import run_two_ranks

from writing_rl.config import ConfigError
from writing_rl.endpoint import EndpointConfig
from writing_rl.engines.rank_metrics import combine_ranks
from writing_rl.judge.cache import JudgeCache, rank_cache_path

WORKER = Path(__file__).with_name("rank_worker.py")


def longer_answer_wins(path: str, body: dict, n: int) -> tuple:
    """A judge that reads both answers from the prompt it was sent, after a delay so requests overlap."""
    prompt = body["messages"][-1]["content"]
    lengths = [prompt.rfind(f"<<<END ANSWER {x} ") - prompt.rfind(f"<<<ANSWER {x} ") for x in "AB"]
    better = "A" if lengths[0] > lengths[1] else "B"
    return ("sleep", 0.2, chat_reply(f"Answer {better} says more.\n[[{better}]]"))


# -- the split ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("total", "world"), [(4, 2), (5, 2), (7, 3), (8, 8), (64, 7), (3, 1)])
def test_shares_add_up_to_the_total_and_differ_by_at_most_one(total, world):
    ep = EndpointConfig(max_concurrency=total)
    shares = [ep.for_rank(rank, world).max_concurrency for rank in range(world)]
    assert sum(shares) == total
    assert shares == sorted(shares, reverse=True)  # the first `total % world` ranks take the extra ones
    assert max(shares) - min(shares) <= (1 if total % world else 0) and min(shares) >= 1


def test_a_total_below_the_process_count_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as err:
        EndpointConfig(max_concurrency=3).for_rank(0, 4, "judge.endpoint")
    assert str(err.value) == (
        "judge.endpoint.max_concurrency: 3 is the endpoint's total across all processes, fewer than the 4 "
        "training processes: set it to at least 4"
    )
    with pytest.raises(ValueError, match="rank 2 is outside a world of 2"):
        EndpointConfig(max_concurrency=4).for_rank(2, 2)


# -- combining the ranks' metrics -----------------------------------------------------------------------
def test_mean_latency_is_total_latency_over_total_calls_not_a_mean_of_means():
    ranks = [
        {"judge/calls": 1, "judge/cache_hits": 0, "judge/retries": 1, "judge/failed_calls": 0, "judge/latency_s": 1.0},
        {"judge/calls": 3, "judge/cache_hits": 5, "judge/retries": 0, "judge/failed_calls": 2, "judge/latency_s": 0.3},
    ]
    tokens = [
        {"judge/prompt_tokens": 100, "judge/completion_tokens": 10, "judge/no_usage": 0},
        {"judge/prompt_tokens": 250, "judge/completion_tokens": 20, "judge/no_usage": 1},
    ]
    combined = combine_ranks([r | n | {"time/judge_s": t} for r, n, t in zip(ranks, tokens, (1.5, 4.0))])
    assert combined == {
        "judge/calls": 4,
        "judge/cache_hits": 5,
        "judge/retries": 1,
        "judge/failed_calls": 2,
        "judge/prompt_tokens": 350,  # what the judge billed, over all ranks (the budget counts these)
        "judge/completion_tokens": 30,
        "judge/no_usage": 1,
        "judge/mean_latency_s": pytest.approx(1.3 / 4),  # a mean of the ranks' means would be 0.55
        "time/judge_s": 4.0,  # the ranks judge side by side: the batch waits for the slowest
    }


# -- the cache file of one rank -------------------------------------------------------------------------
def test_rank_cache_paths_are_one_file_per_rank_and_unchanged_for_one_process(tmp_path):
    path = tmp_path / "judge_cache.sqlite"
    assert rank_cache_path(path, 0, 1) == path
    assert [rank_cache_path(path, r, 2).name for r in range(2)] == [
        "judge_cache.rank0.sqlite",
        "judge_cache.rank1.sqlite",
    ]


def read_count(path: Path) -> subprocess.CompletedProcess:
    """Another process reading the cache file (a second host on a shared filesystem, say)."""
    code = f"import sqlite3; print(sqlite3.connect({str(path)!r}, timeout=1).execute('SELECT COUNT(*) FROM judgements').fetchone()[0])"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_an_exclusive_cache_uses_no_shared_memory_and_locks_other_processes_out(tmp_path):
    path = tmp_path / "judge_cache.rank0.sqlite"
    cache = JudgeCache(path, exclusive=True)
    cache.put("k", {"verdict": "A"})
    assert not Path(f"{path}-shm").exists()  # WAL's shared-memory index: what breaks on NFS
    assert cache._conn.execute("PRAGMA locking_mode").fetchone()[0] == "exclusive"
    while_open = read_count(path)
    assert while_open.returncode != 0 and "database is locked" in while_open.stderr
    cache.close()
    after = read_count(path)
    assert after.returncode == 0 and after.stdout.strip() == "1", after.stderr
    assert JudgeCache(path, exclusive=True).get("k") == {"verdict": "A"}  # kept for the next run


# -- two real processes ---------------------------------------------------------------------------------
def run_ranks(tmp_path: Path, base_url: str, total: int, n_pairs: int) -> list[dict]:
    run_two_ranks(
        WORKER, base_url, str(total), str(tmp_path / "run"), str(tmp_path), str(n_pairs), env={"OMP_NUM_THREADS": "1"}
    )
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ranks")
    with FakeOpenAIServer(longer_answer_wins) as server:
        ranks = run_ranks(tmp_path, server.base_url, total=4, n_pairs=12)
    return tmp_path, server, ranks


def test_two_ranks_together_keep_to_the_configured_total(two_ranks):
    _, server, ranks = two_ranks
    assert server.calls("chat/completions") == 24  # 12 pairs per rank, each judged once
    assert 1 <= server.peak_in_flight <= 4  # per-process limits of 4 would allow 8
    assert [r["share"] for r in ranks] == [2, 2]
    expected = ["B"] * 7 + ["A"] * 5  # every verdict belongs to the prompt it was sent for
    assert all(r["verdicts"] == expected and r["again"] == expected for r in ranks)


def test_judge_metrics_are_totals_over_both_ranks(two_ranks):
    _, server, ranks = two_ranks
    assert ranks[0]["combined"] == ranks[1]["combined"]  # every rank logs the same numbers
    combined = ranks[0]["combined"]
    for name in ("judge/calls", "judge/cache_hits", "judge/retries", "judge/failed_calls"):
        assert combined[name] == sum(r["local"][name] for r in ranks)
    assert combined["judge/calls"] == server.calls("chat/completions") == 24
    assert combined["judge/cache_hits"] == 24 and all(all(r["cached"]) for r in ranks)  # the second pass
    latency = sum(r["local"]["judge/latency_s"] for r in ranks)
    assert combined["judge/mean_latency_s"] == pytest.approx(latency / 24)
    assert combined["time/judge_s"] == 2.0  # the slower rank's


def test_each_rank_writes_its_own_cache_file_without_shared_memory(two_ranks):
    tmp_path, _, ranks = two_ranks
    for r in ranks:  # while open: the database and its WAL, no shared-memory index (`-shm`)
        name = f"judge_cache.rank{r['rank']}.sqlite"
        assert r["cache_files"] == [name, f"{name}-wal"]
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["judge_cache.rank0.sqlite", "judge_cache.rank1.sqlite"]
    for rank in range(2):
        with sqlite3.connect(run / f"judge_cache.rank{rank}.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == 12
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
