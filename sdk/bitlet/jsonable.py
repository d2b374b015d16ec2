"""JSON-safe copies of nested results (base layer): what the CLI prints with
``--json`` and what the agent sends back over the link."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps`` writes as standard JSON.

    dicts (keys as str), lists and tuples recursively; numpy arrays as nested
    lists and numpy scalars as Python numbers; non-finite floats as their
    text (``"inf"``, ``"nan"``: JSON has no literal for them); None, bool,
    int, float and str as they are; anything else (paths, ...) as its text.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
