"""WeChat callbacks per second through /wechat/mp, and turns per second behind it, on SQLite.

Followers post encrypted (safe mode) callbacks to the endpoint over loopback, 20 at a time: a
follow through grid G1's QR code, then texts. The first figure is the endpoint alone (signature
and AES checked, XML parsed, stored in the inbox, `success` answered: what WeChat's 5-second
limit is about); the second is the inbox processor and the sender working through the same
callbacks (each a conversation turn and a customer-service message to the fake API).

    .venv/bin/python bench/bench_wechat.py [--followers 100] [--texts 4]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.wechat import WeChatEnv, make_env


async def one(env: WeChatEnv, gate: asyncio.Semaphore, i: int, texts: int) -> None:
    """One follower: follows through the QR code, then sends `texts` texts."""
    openid = f"o-bench-{i}"
    async with gate:
        await env.cb.follow(openid, scene="JL-XGC-01-G1")
    for n in range(texts):
        async with gate:
            await env.cb.text(openid, f"路灯不亮 {n}")


async def main(followers: int, texts: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async for env in make_env(Path(tmp)):
            gate = asyncio.Semaphore(20)
            started = time.perf_counter()
            await asyncio.gather(*(one(env, gate, i, texts) for i in range(followers)))
            taken = time.perf_counter() - started
            total = followers * (texts + 1)
            print(f"endpoint: {total} callbacks in {taken:.2f}s = {total / taken:.0f}/s")
            started = time.perf_counter()
            await env.settle()
            while await env.channel.inbox.pending(1):
                await env.settle()
            handled = time.perf_counter() - started
            print(f"handled and answered: {total} in {handled:.2f}s = {total / handled:.0f}/s "
                  f"({len(env.fake.custom)} customer-service messages)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=100)
    parser.add_argument("--texts", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.followers, args.texts))
