"""Shared fixtures: devices, dtypes and the `gpu` marker.

Every operation test takes ``device`` (cpu, plus cuda when present) and, where precision
matters, ``dtype``; tests marked ``gpu`` are skipped when CUDA is not available.
"""

from __future__ import annotations

import pytest
import torch

_CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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
