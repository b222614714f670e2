"""Helpers for running ``slac evse`` as an operator would: a station file, an .env file, the
command as a subprocess, its JSON state lines on stdout."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Optional

from ..conftest import ROOT

#: the `slac` console script of the environment the tests run in (.venv/bin/slac)
SLAC = str(Path(sys.executable).parent / "slac")


def station_file(path: Path, interfaces: list[str], prefix: str = "DE*TST*E") -> list[str]:
    ids = [f"{prefix}{j:04d}" for j in range(len(interfaces))]
    path.write_text(
        json.dumps(
            {
                "number_of_evses": len(ids),
                "parameters": [
                    {"evse_id": i, "network_interface": iface} for i, iface in zip(ids, interfaces)
                ],
            }
        )
    )
    return ids


class EvseCommand:
    """``python -m slac evse ...`` with stdin, stdout (state lines) and stderr (logs) piped."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.states: list[dict[str, Any]] = []
        self.other_stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = asyncio.Event()
        self._tasks = [
            asyncio.get_running_loop().create_task(self._read_stdout()),
            asyncio.get_running_loop().create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(cls, *args: str, env: Optional[dict[str, str]] = None) -> EvseCommand:
        process = await asyncio.create_subprocess_exec(
            SLAC,  # the console script, as the README runs it
            "evse",
            *args,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode().strip()
            try:
                self.states.append(json.loads(line))
            except json.JSONDecodeError:
                self.other_stdout.append(line)
            self._changed.set()

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.stderr.append(raw.decode().rstrip("\n"))

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def wait_state(
        self, evse_id: str, state: str, timeout: float = 15.0, since: int = 0
    ) -> dict[str, Any]:
        """The first report of ``state`` for ``evse_id`` from report number ``since`` on."""

        async def wait() -> dict[str, Any]:
            while True:
                for report in self.states[since:]:
                    if report["evse_id"] == evse_id and report["state"] == state:
                        return report
                if self.process.returncode is not None:
                    raise AssertionError(f"slac evse exited:\n{self.log_text()}")
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"no {state} for {evse_id} within {timeout} s; states {self.states}\n"
                f"{self.log_text()}"
            ) from None

    def log_text(self) -> str:
        return "\n".join(self.stderr[-60:])

    async def finish(self, timeout: float = 20.0) -> int:
        """Close stdin (the command stops at EOF) and wait for the exit code."""
        assert self.process.stdin is not None
        if not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise
        await asyncio.gather(*self._tasks)
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
