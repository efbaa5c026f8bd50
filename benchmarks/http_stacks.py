"""Bare HTTP stacks against the fake judge: how the stack of `writing_rl.endpoint` was chosen.

    PYTHONPATH=src python benchmarks/http_stacks.py [--rows 256x64x0.2 1024x256x0.5]

Each stack sends the same chat request (about a judge prompt's size) `calls` times, at most
`concurrency` at once (an asyncio semaphore, connections kept alive), and is timed against the
judge-bound ideal ceil(calls / concurrency) x latency. "CPU" is the process's CPU time over the run
(every thread): what the stack takes from the event loop that also prepares the prompts. Stacks that
are not installed are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from fake_judge_server import fake_judge  # a sibling script

BODY = {"model": "fake-judge", "messages": [{"role": "user", "content": "Which answer is better? " * 100}]}
RAW = json.dumps(BODY).encode()
STACKS = ("httpx", "httpx2", "aiohttp", "pyreqwest")


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
            resp = await client.post(url, content=RAW, headers={"Content-Type": "application/json"})
            resp.raise_for_status()
            json.loads(resp.content)

        return await timed(calls, concurrency, send)


async def with_aiohttp(url: str, calls: int, concurrency: int) -> float:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def send() -> None:
            async with session.post(url, data=RAW, headers={"Content-Type": "application/json"}) as resp:
                resp.raise_for_status()
                json.loads(await resp.read())

        return await timed(calls, concurrency, send)


async def with_pyreqwest(url: str, calls: int, concurrency: int) -> float:
    from pyreqwest.client import ClientBuilder

    async with ClientBuilder().timeout(timedelta(seconds=120)).error_for_status(True).build() as client:

        async def send() -> None:
            request = client.post(url).header("Content-Type", "application/json").body_bytes(RAW).build()
            json.loads((await (await request.send()).bytes()).to_bytes())

        return await timed(calls, concurrency, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["256x64x0.2", "1024x256x0.5"])
    parser.add_argument("--stacks", nargs="+", default=list(STACKS), choices=STACKS)
    args = parser.parse_args()
    stacks = [name for name in args.stacks if importlib.util.find_spec(name)]
    for name in stacks:
        importlib.import_module(name)  # imported before the clock starts
    print("| stack | calls | concurrency | latency | ideal | time | of ideal | CPU |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in args.rows:
        calls, concurrency, latency = (f(x) for f, x in zip((int, int, float), row.split("x")))
        ideal = math.ceil(calls / concurrency) * latency
        with fake_judge(latency) as base_url:
            url = f"{base_url}/chat/completions"
            for stack in stacks:
                run = {"aiohttp": with_aiohttp, "pyreqwest": with_pyreqwest}.get(stack)
                cpu = time.process_time()
                seconds = asyncio.run(
                    run(url, calls, concurrency) if run else with_httpx(stack, url, calls, concurrency)
                )
                cpu = time.process_time() - cpu
                print(
                    f"| {stack} | {calls} | {concurrency} | {latency} s | {ideal:.2f} s | {seconds:.2f} s "
                    f"| {ideal / seconds:.2f}x | {cpu:.2f} s |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
