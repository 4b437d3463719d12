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
