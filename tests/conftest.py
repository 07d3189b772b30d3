"""Shared fixtures: devices, dtypes and the `gpu` marker.

Every operation test takes ``device`` (cpu, plus cuda when present) and, where precision
matters, ``dtype``; tests marked ``gpu`` are skipped when CUDA is not available.
"""

from __future__ import annotations

import os

import pytest
import torch

_CUDA = torch.cuda.is_available()


def pytest_configure(config: pytest.Config) -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # `make test` runs pytest-xdist workers: share the cores, don't oversubscribe
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _xdist_group(item: pytest.Item) -> str:
    """The worker group of a test under ``--dist loadgroup``: its module, so module fixtures
    are built once, except doc blocks, grouped by page (a page's blocks build on each other)."""
    callspec = getattr(item, "callspec", None)
    block = callspec.params.get("block") if callspec is not None else None
    page = getattr(block, "page", None)
    return page if isinstance(page, str) else item.nodeid.split("::")[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        for item in items:
            item.add_marker(pytest.mark.xdist_group(_xdist_group(item)))
    if _CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each test runs on CPU, and on CUDA when present."""
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)
