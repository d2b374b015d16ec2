"""Scripts of the source tree (benchmarks/) loaded as modules, for smoke tests."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script(relpath: str) -> ModuleType:
    """The script ``ROOT / relpath`` as a module (skips the test when the
    source tree is not there, e.g. tests run against an installed SDK)."""
    path = ROOT / relpath
    if not path.exists():
        pytest.skip(f"{relpath} not present (installed without a source tree)")
    spec = importlib.util.spec_from_file_location(f"bitlet_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
