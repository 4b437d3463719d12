"""Shared fixtures for the weir Python suite (runs against the real extension)."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def repo_root() -> str:
    return os.path.abspath(os.path.join(HERE, "..", ".."))
