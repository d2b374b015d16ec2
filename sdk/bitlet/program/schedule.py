"""Tiling of one kernel layer to the device's on-chip buffers.

The buffer sizes and N_PE come from the device's ID/config registers
(:class:`KernelConfig.from_driver`); nothing here is hard-coded.  (The bias
buffer has no ID register: its size is ``hw.BIAS_BUF_WORDS`` of the header
the overlay was built from, which the ISA version pins.)  The rules a
single instruction must satisfy are the kernel's (``hls/bitlet_hw.h``):

* weights: ``N_PE * (KG_END - KG_BEGIN) * 64 <= WGT_BUF`` -> K tiles
  (``KG_BEGIN``/``KG_END``; the first tiles write fp32/int64 partial sums with
  ``FLAG_PARTIAL``, the next ones continue from them with ``FLAG_ACCUM``, so
  the result is bit-identical to the whole layer: same groups, same order);
* activation line buffer: ``((KH-1)*dil_h + 1) * IW * CIN <= ACT_BUF`` (for
  grouped convolutions an output-channel tile covering fewer groups reads a
  channel slice, ``IN_COFF``/``IN_CSTRIDE``, so CIN shrinks);
* output row: ``OW * N_PE * (1, or 2 in fixed mode) <= OUT_BUF``;
* bias: ``COUT * (1 or 2) <= BIAS_BUF`` -> output-channel tiles.

Loop order (DDR traffic): the kernel keeps a layer's weights resident when
``COUT * K_tile <= WGT_BUF``, else it reloads N_PE rows per batch and output
row.  :func:`plan_layer` compares "one output-channel tile, weights
streamed per row" with "output-channel tiles small enough to stay resident,
activations re-read per tile" and keeps the cheaper one (estimated DDR
bytes); the device's profile then reports the measured bytes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bitlet import hw
from bitlet.errors import CompileError


@dataclass(frozen=True)
class KernelConfig:
    """What the compiler needs to know about the kernel (from its ID registers)."""

    n_pe: int
    act_buf_words: int
    wgt_buf_words: int
    out_buf_words: int
    bias_buf_words: int
    kind: str
    formats: tuple[str, ...]
    clock_mhz: int
    isa_version: int

    @classmethod
    def from_driver(cls, driver: Any) -> KernelConfig:
        """Read the configuration of a :class:`bitlet.drivers.kernel.KernelDriver`."""
        ident = driver.identity if driver.identity is not None else driver.probe()
        return cls(n_pe=driver.n_pe, act_buf_words=driver.act_buf_words,
                   wgt_buf_words=driver.wgt_buf_words, out_buf_words=driver.out_buf_words,
                   bias_buf_words=hw.BIAS_BUF_WORDS, kind=driver.kind,
                   formats=tuple(driver.formats), clock_mhz=driver.clock_mhz,
                   isa_version=int(ident.version))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["formats"] = list(self.formats)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> KernelConfig:
        return cls(**{**d, "formats": tuple(d["formats"])})


@dataclass
class LayerGeometry:
    """One kernel layer as the kernel sees it (GEMM: ``ih = iw = kh = kw = 1``, ``n`` rows).

    Its fields look like :class:`bitlet.isa.Insn`'s (``duplicates`` pairs them
    by shape): this is the whole layer before tiling, from which
    :func:`bitlet.program.instructions.layer_instructions` builds the Insns.
    """

    name: str
    n: int
    ih: int
    iw: int
    cin: int
    cout: int
    # (isa.Insn has the same geometry fields as instruction fields)
    kh: int = 1
    kw: int = 1
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dil: tuple[int, int] = (1, 1)
    groups: int = 1
    gemm: bool = False
    fixed: bool = False
    act_bytes: int = 4
    wgt_bytes: int = 4
    out_bytes: int = 4

    @property
    def cin_g(self) -> int:
        return self.cin // self.groups

    @property
    def cout_g(self) -> int:
        return self.cout // self.groups

    @property
    def k(self) -> int:
        return self.kh * self.kw * self.cin_g

    @property
    def n_kg(self) -> int:
        return -(-self.k // hw.GROUP)

    @property
    def out_hw(self) -> tuple[int, int]:
        oh = (self.ih + self.pads[0] + self.pads[2] - (self.kh - 1) * self.dil[0] - 1) // self.stride[0] + 1
        ow = (self.iw + self.pads[1] + self.pads[3] - (self.kw - 1) * self.dil[1] - 1) // self.stride[1] + 1
        return oh, ow

    @property
    def macs(self) -> int:
        oh, ow = self.out_hw
        return self.n * oh * ow * self.cout * self.k


@dataclass
class TilePlan:
    """Output-channel tiles (in units of groups) and K tiles (64-groups) of a layer."""

    group_tiles: list[tuple[int, int]]
    k_tiles: list[tuple[int, int]]
    resident: bool
    ddr_estimate: int
    notes: list[str] = field(default_factory=list)


def k_tiles(n_kg: int, n_pe: int, wgt_buf_words: int) -> list[tuple[int, int]]:
    """K tiles ``[(begin, end), ...]`` (in 64-groups) of a layer of ``n_kg`` groups:
    as many groups per tile as the weight buffer holds for all ``n_pe`` PEs
    (``n_pe * (end - begin) * hw.GROUP <= wgt_buf_words``).  Empty when that is
    not even one group."""
    per = wgt_buf_words // (n_pe * hw.GROUP)
    if per < 1:
        return []
    return [(b, min(b + per, n_kg)) for b in range(0, n_kg, per)]


def _fail(layer: LayerGeometry, what: str, need: int, have: int, hint: str) -> CompileError:
    return CompileError(f"layer {layer.name!r} cannot be tiled: {what} needs {need} words but the "
                        f"kernel's buffer holds {have} ({hint})")


def plan_layer(layer: LayerGeometry, cfg: KernelConfig) -> TilePlan:
    """Choose the tiles of one layer; raises :class:`bitlet.CompileError` with the sizes."""
    _check_limits(layer)
    per_out = 2 if layer.fixed else 1
    ow = layer.out_hw[1]
    if ow * cfg.n_pe * per_out > cfg.out_buf_words:
        raise _fail(layer, f"an output row ({ow} pixels x {cfg.n_pe} PEs)",
                    ow * cfg.n_pe * per_out, cfg.out_buf_words, "output width too large")
    tiles_k = k_tiles(layer.n_kg, cfg.n_pe, cfg.wgt_buf_words)
    if not tiles_k:
        raise _fail(layer, "one 64-group per PE", cfg.n_pe * hw.GROUP, cfg.wgt_buf_words, "")
    rows = (layer.kh - 1) * layer.dil[0] + 1
    max_groups = layer.groups
    act_words = rows * layer.iw * layer.cin_g
    if act_words > cfg.act_buf_words:
        raise _fail(layer, f"the activation line buffer ({rows} rows x {layer.iw} x {layer.cin_g} "
                    "channels)", act_words, cfg.act_buf_words, "use a smaller input")
    if layer.groups == 1:  # output-channel tiles: see channel_tiles()
        return TilePlan([(0, 1)], tiles_k, False, 0)
    max_groups = min(max_groups, cfg.act_buf_words // act_words)
    max_groups = min(max_groups, max(1, cfg.bias_buf_words // (per_out * layer.cout_g)))
    if layer.cout_g * per_out > cfg.bias_buf_words:
        max_groups = 0
    streamed = _tiles(layer.groups, max_groups, layer.cout_g, cfg) if max_groups else None
    resident_groups = _resident_groups(layer, cfg, tiles_k, max_groups)
    options = []
    if streamed:
        options.append((_ddr(layer, streamed, tiles_k, cfg), streamed, False))
    if resident_groups:
        tiles = _tiles(layer.groups, resident_groups, layer.cout_g, cfg)
        options.append((_ddr(layer, tiles, tiles_k, cfg), tiles, True))
    if not options:
        raise _fail(layer, f"the bias of one group ({layer.cout_g} channels)",
                    layer.cout_g * per_out, cfg.bias_buf_words, "too many output channels per group")
    ddr, tiles, resident = min(options, key=lambda o: o[0])
    return TilePlan(tiles, tiles_k, resident or _fits(layer, tiles[0], tiles_k, cfg), ddr)


def over_limits(layer: LayerGeometry) -> list[tuple[str, int, int]]:
    """The kernel's limits a layer exceeds, as ``(field, value, limit)``.

    One entry for each dimension above ``hw.MAX_DIM`` (fields ``n``, ``ih``,
    ``iw``, ``cin``, ``cout``, ``kh``, ``kw``, in that order), then ``("k",
    K, limit)`` when K exceeds ``hw.MAX_K`` (fixed mode: ``hw.FIXED_MAX_K``,
    NUMERICS.md s.6).  Empty when the layer is within them.  The compiler
    and the layer functions (:mod:`bitlet.numerics.layers`) word the refusal.
    """
    out = [(name, getattr(layer, name), hw.MAX_DIM) for name in _DIMS
           if getattr(layer, name) > hw.MAX_DIM]
    k_max = hw.FIXED_MAX_K if layer.fixed else hw.MAX_K
    if layer.k > k_max:
        out.append(("k", layer.k, k_max))
    return out


_DIMS = ("n", "ih", "iw", "cin", "cout", "kh", "kw")


def _check_limits(layer: LayerGeometry) -> None:
    for name, value, limit in over_limits(layer):
        if name == "k":
            which = "the fixed-mode limit" if layer.fixed else "the kernel's limit"
            raise CompileError(f"layer {layer.name!r}: K={value} exceeds {which} {limit}")
        raise CompileError(f"layer {layer.name!r}: {name}={value} exceeds the kernel's "
                           f"limit {limit}")
    if min(layer.out_hw) < 1:
        raise CompileError(f"layer {layer.name!r}: the kernel does not fit the padded input")


def _tiles(groups: int, per_tile: int, cout_g: int, cfg: KernelConfig) -> list[tuple[int, int]]:
    """Split ``groups`` into tiles of at most ``per_tile`` groups (multiples of N_PE channels)."""
    if groups == 1 and per_tile >= 1:
        return [(0, 1)]
    if cout_g % cfg.n_pe == 0 or per_tile < cfg.n_pe:
        step = per_tile
    else:
        step = max(cfg.n_pe, per_tile - per_tile % cfg.n_pe)
    return [(g, min(g + step, groups)) for g in range(0, groups, step)]


def _fits(layer, tile, k_tiles, cfg) -> bool:
    g0, g1 = tile
    return (g1 - g0) * layer.cout_g * (k_tiles[0][1] - k_tiles[0][0]) * hw.GROUP <= cfg.wgt_buf_words


def _resident_groups(layer, cfg, k_tiles, max_groups) -> int:
    """Groups per tile so that a tile's weights stay resident (0 if not possible)."""
    row_words = (k_tiles[0][1] - k_tiles[0][0]) * hw.GROUP
    if layer.groups == 1:
        return 0  # handled by channel tiles below
    return min(max_groups, cfg.wgt_buf_words // (row_words * layer.cout_g))


def _ddr(layer, tiles, k_tiles, cfg) -> int:
    """Estimated DDR bytes of a tiling (activations re-read per tile, weights per row when streamed)."""
    oh, ow = layer.out_hw
    act = layer.n * layer.ih * layer.iw * layer.cin * layer.act_bytes
    out = layer.n * oh * ow * layer.cout * layer.out_bytes
    total = 0
    for g0, g1 in tiles:
        share = (g1 - g0) / layer.groups
        for kb, ke in k_tiles:
            wgt = (g1 - g0) * layer.cout_g * (ke - kb) * hw.GROUP * layer.wgt_bytes
            resident = wgt // layer.wgt_bytes <= cfg.wgt_buf_words
            total += int(act * share) + (wgt if resident else wgt * layer.n * oh)
    return total + out * len(k_tiles)


def channel_tiles(layer: LayerGeometry, plan: TilePlan, cfg: KernelConfig) -> list[tuple[int, int]]:
    """Output-channel ranges ``[co0, co1)`` of the plan, for a non-grouped layer.

    A non-grouped layer (one group) is tiled over output channels directly:
    either one tile (weights streamed) or tiles small enough for the weights
    to stay resident, whichever the DDR estimate prefers.
    """
    per_out = 2 if layer.fixed else 1
    limit = max(1, cfg.bias_buf_words // per_out)
    row_words = (plan.k_tiles[0][1] - plan.k_tiles[0][0]) * hw.GROUP
    resident = max(cfg.n_pe, (cfg.wgt_buf_words // row_words) // cfg.n_pe * cfg.n_pe)
    choices = {min(layer.cout, limit)}
    if layer.n * layer.out_hw[0] > 1:
        choices.add(min(layer.cout, limit, resident))
    best = min(choices, key=lambda t: _channel_ddr(layer, t, plan.k_tiles, cfg))
    return [(c, min(c + best, layer.cout)) for c in range(0, layer.cout, best)]


def _channel_ddr(layer, tile, k_tiles, cfg) -> int:
    oh, _ = layer.out_hw
    act = layer.n * layer.ih * layer.iw * layer.cin * layer.act_bytes
    n_tiles = -(-layer.cout // tile)
    total = 0
    for kb, ke in k_tiles:
        words = tile * (ke - kb) * hw.GROUP
        wgt_all = layer.cout * (ke - kb) * hw.GROUP * layer.wgt_bytes
        total += n_tiles * act + (wgt_all if words <= cfg.wgt_buf_words else wgt_all * layer.n * oh)
    return total
