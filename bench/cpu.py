"""Where the machine's CPU went during a bench phase, per kind of process (Linux /proc).

    cores = await cpu_share({"api": server_pid, "worker": worker_pid}, after=1, seconds=6)
    # {"api": 0.31, "worker": 0.22, "postgres": 0.18, "redis": 0.05, ...}: cores busy

`roles` maps a role to the pid whose process tree belongs to it; the rest is named by command:
postgres, redis, wrk, this bench process, and everything else as "other".
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(command, parent pid, CPU seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    command = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[1] is the parent pid; fields[11] and [12] are utime and stime in ticks.
    return command, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def _snapshot() -> dict[int, tuple[str, int, float]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            found[int(entry)] = stat
    return found


def _role(pid: int, procs: dict[int, tuple[str, int, float]], roles: dict[str, int]) -> str:
    seen = pid
    while seen in procs and seen > 1:
        for role, root in roles.items():
            if seen == root:
                return role
        seen = procs[seen][1]
    command = procs[pid][0]
    if command.startswith(("postgres", "postmaster")):
        return "postgres"
    if command.startswith("redis"):
        return "redis"
    if command == "wrk":
        return "wrk (read client)"
    if pid == os.getpid():
        return "bench client"
    return "other"


async def cpu_share(roles: dict[str, int], after: float, seconds: float) -> dict[str, float]:
    """Cores busy per role over `seconds`, starting `after` seconds from now.

    Sample inside a phase (a process that exits before the end, such as wrk, is missed).
    """
    await asyncio.sleep(after)
    start = _snapshot()
    await asyncio.sleep(seconds)
    end = _snapshot()
    totals: dict[str, float] = {}
    for pid, (_, _, cpu) in end.items():
        before = start[pid][2] if pid in start else 0.0
        role = _role(pid, end, roles)
        totals[role] = totals.get(role, 0.0) + cpu - before
    return {r: round(v / seconds, 2) for r, v in sorted(totals.items()) if v > 0.005}
