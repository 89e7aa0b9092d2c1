"""Callbacks per second through the WeChat Official Account's endpoint (/wechat/mp) or the
WeCom app's (/wecom/callback), and turns per second behind them, on SQLite.

People post encrypted callbacks (safe mode; WeCom's are always encrypted) to the endpoint over
loopback, 20 at a time. WeChat: followers follow through grid G1's QR code, then send texts.
WeCom: the example county's staff (every person but the residents, each with a WeCom UserID)
send texts to the app. The first figure is the endpoint alone (signature and AES checked, XML
parsed, stored in the inbox, `success` answered: what the platforms' 5-second limit is about);
the second is the inbox processor and the sender working through the same callbacks (each a
conversation turn and a customer-service or app message to the fake API).

    .venv/bin/python bench/bench_wechat.py [--channel wechat|wecom] [--people 100] [--texts 4]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import wechat, wecom
from tests.support.paths import EXAMPLE_COUNTY


@dataclass
class Bench:
    """One channel's run: the app and fake (`env`), who posts, and what was sent back."""

    env: wechat.WeChatEnv | wecom.WeComEnv
    people: list[str]
    follow: bool  # WeChat: each follower first follows through the grid's QR code
    sent: list[Any]  # the fake's delivered messages
    what: str

    async def one(self, gate: asyncio.Semaphore, who: str, texts: int) -> None:
        """One person: the follow (if any), then `texts` texts."""
        if self.follow:
            async with gate:
                await self.env.cb.follow(who, scene="JL-XGC-01-G1")  # type: ignore[union-attr]
        for n in range(texts):
            async with gate:
                await self.env.cb.text(who, f"路灯不亮 {n}")

    async def drain(self) -> None:
        """Until every stored callback is handled and its answer delivered."""
        await self.env.settle()
        while await self.env.channel.inbox.pending(1):
            await self.env.settle()


async def wechat_bench(tmp: Path, people: int) -> AsyncIterator[Bench]:
    async for env in wechat.make_env(tmp):
        followers = [f"o-bench-{i}" for i in range(people)]
        yield Bench(env, followers, True, env.fake.custom, "customer-service messages")


async def wecom_bench(tmp: Path, people: int) -> AsyncIterator[Bench]:
    # The county's staff written on one line (all but a few), given a UserID where they have
    # none yet; as many as asked.
    lines = EXAMPLE_COUNTY.read_text(encoding="utf-8").splitlines()
    staff_line = re.compile(r"\s*- \{code: (P-[A-QS-Z]-\d+), ")
    codes = [m.group(1) for line in lines
             if (m := staff_line.match(line)) and "wecom_userid" not in line]  # fmt: skip
    staff = {code: f"bench-{code}" for code in codes[:people]}
    async for env in wecom.make_env(tmp, staff=staff):
        yield Bench(env, list(staff.values()), False, env.fake.sent, "app messages")


async def main(channel: str, people: int, texts: int) -> None:
    make = wechat_bench if channel == "wechat" else wecom_bench
    with tempfile.TemporaryDirectory() as tmp:
        async for bench in make(Path(tmp), people):
            gate = asyncio.Semaphore(20)
            started = time.perf_counter()
            await asyncio.gather(*(bench.one(gate, who, texts) for who in bench.people))
            taken = time.perf_counter() - started
            total = len(bench.people) * (texts + bench.follow)
            print(f"{channel} endpoint: {total} callbacks from {len(bench.people)} people in "
                  f"{taken:.2f}s = {total / taken:.0f}/s")  # fmt: skip
            started = time.perf_counter()
            await bench.drain()
            handled = time.perf_counter() - started
            print(f"handled and answered: {total} in {handled:.2f}s = {total / handled:.0f}/s "
                  f"({len(bench.sent)} {bench.what})")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channel", choices=("wechat", "wecom"), default="wechat")
    parser.add_argument(
        "--people", "--followers", type=int, default=100,
        help="followers (WeChat) or staff (WeCom: at most the county's 21)",
    )  # fmt: skip
    parser.add_argument("--texts", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.channel, args.people, args.texts))
