"""Shared fixtures for the weir Python suite (runs against the real extension)."""

import os
import sys

import pytest

from helpers import pool_backend_params

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def repo_root() -> str:
    return os.path.abspath(os.path.join(HERE, "..", ".."))


@pytest.fixture(params=pool_backend_params())
def backend(request) -> str:
    """The name of each interpreter-pool backend in turn."""
    return request.param
@pytest.fixture(scope="session", autouse=True)
def gil_never_on_workers():
    """The GIL is never taken on a tokio worker thread (checked once the whole session ran)."""
    from weir import _native

    yield
    assert _native._gil_on_workers() == 0, "the GIL was taken on a tokio worker thread"
