"""matplotlib for the tools that save plots (``--plots``): one place that
imports it, off-screen (the Agg backend), with one clear message when absent."""
from __future__ import annotations

from typing import Any

from bitlet.errors import BitletValueError

__all__ = ["pyplot"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files, no screen).

    Raises
    ------
    bitlet.BitletValueError
        matplotlib is not installed (naming how to install it).
    """
    try:
        import matplotlib  # optional: only saving plots needs it

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # optional: only saving plots needs it
    except ImportError:
        raise BitletValueError("--plots needs matplotlib (pip install matplotlib)") from None
    return plt
