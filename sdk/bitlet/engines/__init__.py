"""The C bridges: the only modules that load the compiled kernels.

:mod:`bitlet.engines.reference` (the kernel's own C source, ``hls/``) and
:mod:`bitlet.engines.fast` (the bit-exact emulator, ``emu/``).  Both write
PE results in one C layout, :func:`pe_result_dtype`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bitlet import hw


def pe_result_dtype(ffi: Any, ctype: str) -> np.dtype:
    """numpy structured dtype laid out exactly like the C struct ``ctype``
    (``bitlet_pe_result_t`` of the reference, ``bitlet_fast_result_t`` of the
    fast engine), offsets and size as the C compiler of ``ffi`` laid it out.

    Fields: ``res`` uint32, ``acc`` int64, ``emax`` int32, ``nan`` int32,
    ``scan`` int32 (S), ``latency`` int32 (cycles), ``col_steps`` uint8
    [``hw.SIG_BITS``].
    """
    fields = {
        "res": np.uint32, "acc": np.int64, "emax": np.int32, "nan": np.int32,
        "scan": np.int32, "latency": np.int32,
        "col_steps": (np.uint8, (hw.SIG_BITS,)),
    }
    return np.dtype({
        "names": list(fields),
        "formats": list(fields.values()),
        "offsets": [ffi.offsetof(ctype, name) for name in fields],
        "itemsize": ffi.sizeof(ctype),
    })
