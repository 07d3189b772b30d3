"""How a training process uses the machine: intra-op threads and the C allocator.

Small models on small shared machines lose most of their time to threads fighting over cores
and to the allocator handing memory back to the kernel after every step. Both settings are
process-wide, so the trainer applies them around its own work (:func:`intra_op_threads`) or
once per process (:func:`keep_freed_memory`) and says what it chose.

Thread rule (``threads="auto"``): the usable cores are the CPUs this process may run on
(``os.sched_getaffinity``), capped by the cgroup CPU quota when one is readable (cgroup v2
``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``); cores that the 1-minute load
average says are busy with other work are taken off; at least 1 thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

#: where the cgroup CPU quota is read (v2 first, then v1)
CGROUP_ROOT = Path("/sys/fs/cgroup")

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count and why.

    Attributes:
        threads: threads for ``torch.set_num_threads``.
        reason: one line for the log, e.g. ``"auto: 2 usable cores, load 1.6"``.
    """

    threads: int
    reason: str


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup quota allows (e.g. ``1.5``), or ``None`` without a readable quota."""
    v2 = root / "cpu.max"
    v1 = (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us")
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if v1[0].is_file() and v1[1].is_file():
            quota_us, period_us = (int(p.read_text()) for p in v1)
            return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def usable_cores(root: Path = CGROUP_ROOT) -> int:
    """Cores this process may use: its CPU affinity, capped by the cgroup quota (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cores = min(cores or 1, math.ceil(quota))
    return max(1, cores or 1)


@cache
def auto_threads() -> ThreadChoice:
    """The ``threads="auto"`` choice, decided once per process (later folds would otherwise
    count this process's own training as other load)."""
    cores = usable_cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    threads = max(1, min(cores, cores - round(load)))
    return ThreadChoice(threads, f"auto: {cores} usable cores, load {load:.1f}")


def resolve_threads(setting: int | str) -> ThreadChoice:
    """``"auto"`` (:func:`auto_threads`) or a positive thread count.

    Raises:
        ValueError: anything else.
    """
    if setting == "auto":
        return auto_threads()
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"threads must be 'auto' or a positive integer, got {setting!r}")
    return ThreadChoice(setting, "set")


def use_threads_for_process(setting: int | str = "auto") -> ThreadChoice:
    """Resolve ``setting`` (:func:`resolve_threads`) and make it the process's intra-op thread
    count, for everything that runs outside the trainer too (rendering clips, computing flow).

    Call it first thing in a command: ``"auto"`` is decided once per process from the load
    average, which the command's own work would otherwise raise. Oversubscribed OpenMP threads
    spin while waiting for each other: on a 2-core machine with a load of 6, rendering 140 demo
    clips took 31 s with 2 threads and 2.5 s with 1 (measured).
    """
    choice = resolve_threads(setting)
    torch.set_num_threads(choice.threads)
    return choice


@contextlib.contextmanager
def intra_op_threads(threads: int) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the block, the previous count restored after."""
    previous = torch.get_num_threads()
    if threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


@cache
def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 128 << 20) -> bool:
    """Let glibc keep freed memory for the next step instead of unmapping it (once per process).

    Training allocates and frees the same few-megabyte activations every step; with glibc's
    defaults they go back to the kernel and fault in again, which cost a quarter of the CPU
    time of STSTNet training. Raises ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``.

    Returns:
        Whether the settings applied (``False`` off glibc).
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )
