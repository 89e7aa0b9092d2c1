"""What `serve`'s shutdown cancels stops: a loop cancelled just as a wake-up reached it, and a
writer cancelled just as SQLite's write lock reached it (bot/runner.py `bounded`).

On Python 3.11 asyncio.wait_for runs what it waits for in a task of its own and, when that
task ends just as the waiter is cancelled, returns its result and drops the cancellation. A
WeCom process's shutdown once never ended that way: its sender had been cancelled as a digest's
commit woke it, went on delivering, and the lease keeper waited for it forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pytest

from storage.write_lock import WriteLock

STOP = 10  # seconds: a loop that stops does so in milliseconds; one that does not, never


class Watched(asyncio.Event):
    """A loop's wake-up event that tells when the loop has begun to wait on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = asyncio.Event()

    async def wait(self) -> Literal[True]:
        self.waited.set()
        return await super().wait()


async def cancelled_as_woken(owner: Any, run: Callable[[], Awaitable[None]]) -> asyncio.Task:
    """Run `owner`'s loop until it idles, wake it, and cancel it before it runs on."""
    owner._wake = wake = Watched()
    task = asyncio.create_task(run())
    await wake.waited.wait()  # idle: waiting for a wake-up or for its timeout
    owner.wake()
    await asyncio.sleep(0)  # the wake-up went through; the loop has not run since
    task.cancel()
    await asyncio.wait({task}, timeout=STOP)
    return task


async def test_the_wecom_sender_cancelled_as_a_commit_wakes_it_stops(wc):
    task = await cancelled_as_woken(wc.channel.sender, wc.channel.sender.run)
    assert task.cancelled()


async def test_the_inbox_processor_cancelled_as_a_callback_wakes_it_stops(wc):
    task = await cancelled_as_woken(wc.channel.processor, wc.channel.processor.run)
    assert task.cancelled()


async def test_the_web_chat_delivery_cancelled_as_a_commit_wakes_it_stops(demo):
    _, chat, _ = demo
    task = await cancelled_as_woken(chat, chat.run)
    assert task.cancelled()


@pytest.mark.parametrize("turns", range(4))
async def test_a_writer_cancelled_as_the_lock_reaches_it_stops_and_passes_it_on(turns):
    lock = WriteLock()
    await lock.acquire("first")
    waiter = asyncio.create_task(lock.acquire("second"))
    await asyncio.sleep(0)
    assert lock.waiting == 1
    lock.release("first")  # handed to the waiter ...
    for _ in range(turns):
        await asyncio.sleep(0)
    told = waiter.cancel()  # ... which is told to stop at some point of taking it
    (outcome,) = await asyncio.gather(waiter, return_exceptions=True)
    if told:  # it had not taken the lock yet: it stops, and the lock is free for the next
        assert isinstance(outcome, asyncio.CancelledError)
        assert lock.holder is None
        async with asyncio.timeout(STOP):
            await lock.acquire("third")
        assert lock.holder == "third"
    else:  # it had: it holds it (and its transaction's end gives it back)
        assert outcome is None and lock.holder == "second"
