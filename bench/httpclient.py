"""A tiny keep-alive HTTP/1.1 load client on asyncio streams (stdlib only).

The same client drives the echo baseline and referflow, so the ratio compares servers, not
clients.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


class Connection:
    """One keep-alive connection."""

    def __init__(self, host: str, port: int, token: str | None = None):
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        for _ in range(2):
            try:
                return await self._post(path, body)
            except (ConnectionError, IndexError, asyncio.IncompleteReadError):
                await self.open()  # the server closed the keep-alive connection: reconnect
        return await self._post(path, body)

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        payload = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n")
        if self.token:
            head += f"Authorization: Bearer {self.token}\r\n"
        assert self.writer and self.reader
        self.writer.write(head.encode() + b"\r\n" + payload)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            if name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            await self.open()
        return int(status_line.split()[1]), json.loads(data) if data else None

    async def close(self) -> None:
        if self.writer:
            self.writer.close()


@dataclass
class Result:
    """Latencies (seconds) and errors of one run."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def line(self, name: str) -> str:
        return (f"{name:<28} {self.rps:8.0f} req/s   p50 {self.pct(50):6.1f} ms   "
                f"p99 {self.pct(99):6.1f} ms   errors {self.errors}   n={len(self.latencies)}")


Step = Callable[[Connection, int, "Timer"], Awaitable[None]]


class Timer:
    """Times single requests and records them in the overall result and one per label."""

    def __init__(self, result: Result):
        self.result = result
        self.by_label: dict[str, Result] = {}

    async def post(self, conn: Connection, path: str, body: dict[str, Any], label: str = "all",
                   ok: tuple[int, ...] = (200, 201)) -> Any:
        start = time.perf_counter()
        status, data = await conn.post(path, body)
        elapsed = time.perf_counter() - start
        labelled = self.by_label.setdefault(label, Result())
        for result in (self.result, labelled):
            result.latencies.append(elapsed)
            result.errors += status not in ok
        return data


async def drive(host: str, port: int, token: str | None, concurrency: int, seconds: float,
                step: Step) -> tuple[Result, dict[str, Result]]:
    """Run ``step`` in ``concurrency`` clients for ``seconds``; return what was measured."""
    result = Result()
    timer = Timer(result)
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        conn = Connection(host, port, token)
        await conn.open()
        n = 0
        while time.perf_counter() < deadline:
            await step(conn, index * 10_000_000 + n, timer)
            n += 1
        await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - start
    for labelled in timer.by_label.values():
        labelled.seconds = result.seconds
    return result, timer.by_label
