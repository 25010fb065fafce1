"""The loopback Bot API emulator in a process of its own, for benchmarks.

Telegram's servers do not run on OneGrid's CPU, so a benchmark that measures OneGrid should not pay
for the emulator either (checking each request against the Bot API description, making a photo's
thumbnails). `EmulatorProcess` starts this module on another core (`taskset`) and reads its request
log over a pipe:

    async with EmulatorProcess(core=1) as emulator:
        emulator.base_url, emulator.token          # for OneGrid's settings
        log = await emulator.requests()            # [Request(method, status, fault, at, text), ...]

Run alone it prints "READY <base url> <token>" and answers a line "dump N" on stdin with the requests
from the N-th on as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Request:
    method: str
    status: int | None
    fault: str | None
    at: float
    text: str  # the message's text or caption ("" for other calls)


class EmulatorProcess:
    """`bench/emulator_proc.py` as a child process pinned to `core` (None: not pinned)."""

    def __init__(self, core: int | None = 1) -> None:
        self.core = core
        self.base_url = self.token = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> EmulatorProcess:
        cmd = [sys.executable, str(Path(__file__).resolve())]
        if self.core is not None:
            cmd = ["taskset", "-c", str(self.core), *cmd]
        self._proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, limit=1 << 28)
        line = (await asyncio.wait_for(self._proc.stdout.readline(), timeout=60)).decode().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"the emulator process did not start: {line}")
        self.base_url, self.token = line[1], line[2]
        return self

    async def requests(self, since: int = 0) -> list[Request]:
        """The requests the emulator recorded, from the `since`-th on."""
        async with self._lock:
            self._proc.stdin.write(f"dump {since}\n".encode())
            await self._proc.stdin.drain()
            rows = json.loads(await self._proc.stdout.readline())
        return [Request(*row) for row in rows]

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.stdin.write(b"quit\n")
            await self._proc.stdin.drain()
            try:
                await asyncio.wait_for(self._proc.wait(), timeout=10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()


async def _serve() -> None:
    sys.path.insert(0, str(ROOT))
    from bot.emulator import BotApiEmulator

    async with BotApiEmulator(limits=True) as emulator:
        print("READY", emulator.base_url, emulator.token, flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            command, _, arg = line.partition(" ")
            if command == "quit":
                break
            rows = [[r.method, r.status, r.fault, r.at, r.params.get("text") or r.params.get("caption") or ""]
                    for r in emulator.requests[int(arg or 0):]]
            sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(_serve())
