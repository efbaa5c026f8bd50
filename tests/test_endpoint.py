"""The shared OpenAI-compatible client (`writing_rl.endpoint`): what the judge, critic and generators rely on."""

import asyncio
import time

from fake_openai import FakeOpenAIServer, chat_reply

from writing_rl.endpoint import EndpointConfig, OpenAICompatClient


async def test_connections_are_kept_alive_across_waves_of_requests():
    """Four waves of 24 requests reuse their connections: a batch never reconnects per wave (that would be
    ~96 connections). On a loaded 2-core machine a run once opened 25: a connection not yet back in the pool
    when the next request starts, or one the server closed, is replaced. A few over 24 are that, not a wave."""

    def behaviour(path, body, n):
        time.sleep(0.05)
        return chat_reply("ok")

    with FakeOpenAIServer(behaviour, keep_alive=True) as server:
        client = OpenAICompatClient(EndpointConfig(base_url=server.base_url, max_concurrency=24, max_retries=0))
        results = await asyncio.gather(*(client.chat([{"role": "user", "content": f"{i}"}]) for i in range(96)))
        await client.aclose()
    assert [r.text for r in results] == ["ok"] * 96
    assert server.calls("/chat/completions") == 96 and client.stats.requests == 96
    assert 1 <= len(server.client_ports) <= 24 + 8
