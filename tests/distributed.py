"""Launching real multi-process runs from tests: ``torchrun`` on CPU (gloo) in a subprocess.

Every run gets a free TCP port, ``OMP_NUM_THREADS=1`` and this checkout on ``PYTHONPATH``, so
two workers share CI's two cores without oversubscribing them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on now (for torchrun's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child run: this checkout importable, one intra-op thread each."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
    return env


def torchrun(args: Sequence[str], *, nproc: int = 2) -> list[str]:
    """The command line of ``torchrun --nproc_per_node=nproc`` on localhost running ``args``
    (e.g. ``["-m", "recognizer.cli", "train", ...]``)."""
    return [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
        "--nnodes=1", "--master_addr=127.0.0.1", f"--master_port={free_port()}",
        "--max_restarts=0", "--monitor_interval=0.1", *args,
    ]  # fmt: skip


def start(command: Sequence[str]) -> subprocess.Popen:
    """Start ``command`` in the repository root in a session of its own (so that
    :func:`finish` can stop it with every process it started); stdout and stderr merged."""
    return subprocess.Popen(
        list(command), cwd=ROOT, env=child_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    """Wait for ``proc`` and return its output; past ``timeout``, kill its whole session (no
    worker is left behind) and fail with the output so far."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate()[0]
        raise AssertionError(f"{proc.args} ran past {timeout} s\n{output[-6000:]}") from None


def run(command: Sequence[str], timeout: float = 240) -> str:
    """Run ``command`` (as :func:`start`); return its output, or fail with it when the command
    fails or runs past ``timeout``."""
    proc = start(command)
    output = finish(proc, timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {proc.returncode}\n{output[-6000:]}")
    return output


def worker_pids(parent: int, rank: int) -> list[int]:
    """Processes under ``parent`` whose environment says ``RANK=rank`` (torchrun's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and f"RANK={rank}".encode() in environ:
            found.append(int(entry.name))
    return found
