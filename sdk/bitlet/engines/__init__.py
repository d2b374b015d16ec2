"""The C bridges: the only modules that load the compiled kernels.

:mod:`bitlet.engines.reference` (the kernel's own C source, ``hls/``) and
:mod:`bitlet.engines.fast` (the bit-exact emulator, ``emu/``).  Both write
PE results in one C layout, :func:`pe_result_dtype`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bitlet import hw
from bitlet.errors import BitletValueError

#: kernel name -> its top in the compiled libraries (the names of the overlays)
KERNEL_TOPS = {"bitlet": "bitlet_top", "vendor_fp": "vendor_fp_top"}
#: the kernels a simulator or the layer functions can run
KERNELS = tuple(KERNEL_TOPS)
#: the 32-bit outputs of a kernel top in C argument order (hls/bitlet_top.h);
#: the 64-bit ``clock`` output follows them
TOP_OUTPUTS = ("status", "insn_done", "id_magic", "id_version", "id_config", "id_act_buf",
               "id_wgt_buf", "id_out_buf")


def check_kernel(kernel) -> str:
    """``kernel`` if it names a kernel of :data:`KERNELS`, else a BitletValueError."""
    if not isinstance(kernel, str) or kernel not in KERNEL_TOPS:
        raise BitletValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    return kernel


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
