"""Bare HTTP stacks against the fake judge: how the stack of `writing_rl.endpoint` was chosen.

    PYTHONPATH=src python benchmarks/http_stacks.py [--rows 256x64x0.2 1024x256x0.5]

Each stack sends the same small chat request `calls` times, at most `concurrency` at once (an
asyncio semaphore, one pool of `concurrency` kept-alive connections), and is timed against the
judge-bound ideal ceil(calls / concurrency) x latency. Stacks that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import time
from collections.abc import Awaitable, Callable

from fake_judge_server import fake_judge  # a sibling script

BODY = {"model": "fake-judge", "messages": [{"role": "user", "content": "Hello."}], "max_tokens": 1}


async def timed(calls: int, concurrency: int, send: Callable[[], Awaitable[None]]) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await send()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return time.perf_counter() - started


async def with_httpx(module_name: str, url: str, calls: int, concurrency: int) -> float:
    module = __import__(module_name)
    limits = module.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with module.AsyncClient(limits=limits, timeout=120) as client:

        async def send() -> None:
            (await client.post(url, json=BODY)).raise_for_status()

        return await timed(calls, concurrency, send)


async def with_aiohttp(url: str, calls: int, concurrency: int) -> float:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def send() -> None:
            async with session.post(url, json=BODY) as resp:
                resp.raise_for_status()
                await resp.json()

        return await timed(calls, concurrency, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["256x64x0.2", "1024x256x0.5"])
    args = parser.parse_args()
    stacks = [name for name in ("httpx", "httpx2", "aiohttp") if importlib.util.find_spec(name)]
    print(
        "| stack | calls | concurrency | latency | ideal | time | of ideal |\n| --- | --- | --- | --- | --- | --- | --- |"
    )
    for row in args.rows:
        calls, concurrency, latency = (f(x) for f, x in zip((int, int, float), row.split("x")))
        ideal = math.ceil(calls / concurrency) * latency
        with fake_judge(latency) as base_url:
            url = f"{base_url}/chat/completions"
            for stack in stacks:
                run = (
                    with_aiohttp(url, calls, concurrency)
                    if stack == "aiohttp"
                    else with_httpx(stack, url, calls, concurrency)
                )
                seconds = asyncio.run(run)
                print(
                    f"| {stack} | {calls} | {concurrency} | {latency} s | {ideal:.2f} s | {seconds:.2f} s | {ideal / seconds:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
