"""The one builder of a layer's kernel instructions (CONV2D or GEMM).

A kernel layer becomes output-channel tiles x K tiles of instructions: the
K tiles of one output tile are chained through fp32/int64 partial sums
(``FLAG_PARTIAL`` on every tile but the last, ``FLAG_ACCUM`` on every tile
but the first), so the result is the whole layer's bit for bit
(NUMERICS.md s.5).  ReLU and bias apply on the last K tile only.

:func:`layer_instructions` returns the instructions with every address 0 and
says which operand each one reads and writes (:class:`LayerInsn`); the
caller places the operands: the compiler (:mod:`bitlet.compiler.lower`) in a
program image, the layer functions (:mod:`bitlet.numerics.layers`) in a host
DDR image or in numpy buffers.  The tiles themselves come from
:mod:`bitlet.program.schedule` (:func:`~bitlet.program.schedule.k_tiles`,
:func:`~bitlet.program.schedule.plan_layer`).
"""
from __future__ import annotations

from dataclasses import dataclass

from bitlet import hw, isa
from bitlet.program.schedule import LayerGeometry

#: the two partial-sum buffers the K tiles of a layer alternate between
PARTIALS = ("partial0", "partial1")


@dataclass(frozen=True)
class LayerInsn:
    """One instruction of a layer and the operands it addresses.

    Attributes
    ----------
    insn : bitlet.isa.Insn
        The instruction, every address field 0.
    k_tile : int
        Index of its K tile in the layer's ``k_tiles`` (the weight tile it reads).
    co0 : int
        First output channel of its output-channel tile (offset into the
        weight rows, the bias and the output channels).
    out : str
        ``"out"`` (the layer's output: last K tile) or a name of
        :data:`PARTIALS` (the partial sums it writes).
    acc : str or None
        The partial-sum buffer it continues from (``FLAG_ACCUM``), else None.
    bias : bool
        Whether it reads the bias (``FLAG_BIAS``).
    """

    insn: isa.Insn
    k_tile: int
    co0: int
    out: str
    acc: str | None
    bias: bool


def partial_buffers(n_k_tiles: int) -> tuple[str, ...]:
    """Names of the partial-sum buffers a layer of ``n_k_tiles`` K tiles uses."""
    return PARTIALS[:min(2, n_k_tiles - 1)]


def layer_instructions(geo: LayerGeometry, k_tiles: list[tuple[int, int]], *,
                       wfmt: int, afmt: int | None = None, ofmt: int | None = None,
                       tiles: list[tuple[int, int, int, int]] | None = None,
                       relu: bool = False, bias: bool = False, prune: int = hw.PRUNE_ALL,
                       quant: int = 0, fixbits: int = 0, layer: int = 0) -> list[LayerInsn]:
    """The instructions of one layer, tile by tile.

    Parameters
    ----------
    geo : LayerGeometry
        The layer (``geo.gemm``: a GEMM of ``geo.n`` rows, K = ``geo.cin``,
        M = ``geo.cout``).
    k_tiles : list of (begin, end)
        64-groups of K per tile (:func:`bitlet.program.schedule.k_tiles`).
    wfmt, afmt, ofmt : int
        ``hw.FMT_*`` codes of weights, activations and outputs (``afmt`` and
        ``ofmt`` default to ``wfmt``).
    tiles : list of (co0, co1, g0, g1), optional
        Output-channel tiles: channels ``[co0, co1)`` of groups ``[g0, g1)``
        (non-grouped layers: ``g0, g1 = 0, 1``).  Default: the whole layer.
    relu, bias : bool
        Apply ReLU / add the bias (on the last K tile).
    prune, quant, fixbits, layer : int
        The instruction fields of the same names.

    Returns
    -------
    list of LayerInsn, output tile by output tile, K tiles in order.
    """
    afmt = wfmt if afmt is None else afmt
    ofmt = wfmt if ofmt is None else ofmt
    if tiles is None:
        tiles = [(0, geo.cout, 0, geo.groups)]
    partials = partial_buffers(len(k_tiles))
    out = []
    for co0, co1, g0, g1 in tiles:
        prev = None
        for t, (kb, ke) in enumerate(k_tiles):
            last = t == len(k_tiles) - 1
            dst = "out" if last else partials[t % 2]
            common = {"act": 0, "wgt": 0, "out": 0, "wfmt": wfmt, "afmt": afmt, "ofmt": ofmt,
                      "relu": relu and last, "use_bias": bias and last,
                      "accum": prev is not None, "partial": not last, "prune": prune,
                      "quant": quant, "fixbits": fixbits, "layer": layer,
                      "out_cstride": geo.cout, "out_coff": co0, "kg_begin": kb, "kg_end": ke}
            if geo.gemm:
                insn = isa.gemm(m=co1 - co0, k=geo.cin, n=geo.n, in_cstride=geo.cin, **common)
            else:
                ng = g1 - g0
                insn = isa.conv2d(n=geo.n, ih=geo.ih, iw=geo.iw, cin=ng * geo.cin_g,
                                  cout=co1 - co0, kh=geo.kh, kw=geo.kw, stride=geo.stride,
                                  padding=geo.pads, dilation=geo.dil, groups=ng,
                                  in_cstride=geo.cin, in_coff=g0 * geo.cin_g, **common)
            out.append(LayerInsn(insn, t, co0, dst, prev, bias and last))
            prev = dst
    return out
