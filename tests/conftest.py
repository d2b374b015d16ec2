"""Shared pytest configuration.

Tiers (markers, see pyproject.toml): pure tests need nothing; ``device`` tests
use a simulated board; ``pynq`` tests run pynq's own code against the
simulated board (need the ``board`` extra, skipped with a reason otherwise);
``board`` tests need a real PYNQ board (skipped without one); ``slow`` marks
long runs (real models).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden"


def _on_board() -> bool:
    return os.path.exists("/dev/xdevcfg") or os.path.exists("/sys/class/fpga_manager/fpga0")


def pytest_collection_modifyitems(config, items):
    if _on_board():
        return
    skip_board = pytest.mark.skip(reason="needs a PYNQ board (no FPGA manager on this machine)")
    for item in items:
        if "board" in item.keywords:
            item.add_marker(skip_board)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN
