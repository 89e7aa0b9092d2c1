"""The anchor of bench/bench_latency.py: the least a webhook bot can do per update.

An aiohttp server taking Telegram's webhook posts at /telegram/webhook: it stores the update
with one SQLAlchemy insert on SQLite (WAL, as shuoshi's) and answers the chat with one
sendMessage to the Bot API, then returns 200. No dispatcher, no outbox, no conversation.

    python bench/latency_anchor.py PORT DATABASE_FILE API_BASE TOKEN
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
from aiohttp import web
from sqlalchemy import Column, Integer, MetaData, String, Table, event, insert
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

meta = MetaData()
updates = Table("updates", meta, Column("id", Integer, primary_key=True), Column("body", String))


async def main(port: int, database: str, api_base: str, token: str) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{database}", connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _wal(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    async with engine.begin() as conn:
        await conn.run_sync(meta.create_all)
    sessions = async_sessionmaker(engine)
    client = aiohttp.ClientSession()
    send_url = f"{api_base.rstrip('/')}/bot{token}/sendMessage"

    async def webhook(request: web.Request) -> web.Response:
        body = await request.text()
        chat = json.loads(body)["message"]["chat"]["id"]
        async with sessions() as session:
            await session.execute(insert(updates).values(body=body))
            await session.commit()
        async with client.post(send_url, json={"chat_id": chat, "text": "ok"}) as answer:
            await answer.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/telegram/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("anchor is running", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await client.close()
        await runner.cleanup()
        await engine.dispose()


if __name__ == "__main__":
    try:
        asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
    except KeyboardInterrupt:
        pass
