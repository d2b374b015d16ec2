"""The README's Python quickstart runs as written."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.device


def _quickstart() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python quickstart"):]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_readme_quickstart_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_quickstart(), "README.md quickstart", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "total kernel" in out and "rel L2" in out
    assert (tmp_path / "espcn.bitlet.npz").exists()
    assert namespace["sr"].shape == (1, 1, 96, 96)
    assert namespace["y"].shape == (1, 8, 8, 32)  # (16 + 1 + 0 - 3) // 2 + 1 per axis
