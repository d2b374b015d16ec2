"""Graph IR -> :class:`bitlet.program.Program`.

Walks the optimised graph in order.  Kernel ops become instructions (tiled
by :mod:`bitlet.program.schedule`), host ops become host steps; values move
between host and device through explicit ``upload``/``download`` steps,
inserted only where a value changes sides, so consecutive kernel layers form
one kernel segment that never leaves device memory.  Device values are
placed in one activation pool by a liveness-based first-fit allocator.

Device layouts: a 4-D activation is NHWC (``layout="nhwc"``); a GEMM operand
``(..., K)`` is row-major ``(rows, K)`` (``layout="rows"``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bitlet import hw, isa
from bitlet._version import __version__
from bitlet.compiler.fold import KERNEL_TYPES
from bitlet.compiler.graph import Graph, Node
from bitlet.compiler.strips import split_wide_convs
from bitlet.errors import CompileError
from bitlet.program import ADDRESS_FIELDS, Program
from bitlet.program.instructions import layer_instructions, partial_buffers
from bitlet.program.schedule import KernelConfig, LayerGeometry, channel_tiles, plan_layer
from bitlet.program.weights import (
    check_finite,
    conv_rows,
    device_rows,
    fixed_quant,
    limit_ones,
    quantize_fixed,
)

_ALIGN = 64
_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fixed": 4}
#: fixed mode: activation bits (per-tensor scale chosen by the host at run time)
FIXED_ACT_BITS = 16
FIXED_DEFAULT_BITS = 8


def parse_precision(precision: str) -> tuple[str, int | None]:
    """``"fp32"`` -> ("fp32", None); ``"fixed"``/``"fixed8"`` -> ("fixed", 8)."""
    if isinstance(precision, str) and precision.startswith("fixed"):
        digits = precision[len("fixed"):]
        if digits == "" or digits.isdigit():
            bits = int(digits) if digits else FIXED_DEFAULT_BITS
            if 2 <= bits <= hw.FIXED_MAX_BITS:
                return "fixed", bits
    if precision in ("fp32", "fp16", "bf16"):
        return precision, None
    raise CompileError(f"precision must be 'fp32', 'fp16', 'bf16' or 'fixed<n>' (n = 2..24 weight "
                       f"bits, e.g. 'fixed8'), got {precision!r}")


@dataclass
class LayerOptions:
    """Per-layer compile options."""

    prune: int = field(default_factory=lambda: hw.PRUNE_ALL)
    bits: int | None = None


@dataclass
class _DevValue:
    name: str
    nbytes: int
    shape: tuple[int, ...]
    fmt: str
    first: int = -1
    last: int = -1
    offset: int = -1


@dataclass
class _Insn:
    insn: isa.Insn
    refs: dict[str, tuple[str, str, int]] = field(default_factory=dict)


class Lowering:
    """State of one lowering; use :func:`lower`."""

    def __init__(self, graph: Graph, cfg: KernelConfig, precision: str,
                 options: dict[str, LayerOptions]):
        self.graph, self.cfg, self.precision, self.options = graph, cfg, precision, options
        self.base_fmt, self.fixed_bits = parse_precision(precision)
        self.fmt = self.base_fmt
        self.steps: list[dict[str, Any]] = []
        self.insns: list[_Insn] = []
        self.blob: list[np.ndarray] = []
        self.blob_size = 0
        self.dev: dict[str, _DevValue] = {}
        self.device_of: dict[tuple[str, str], str] = {}
        self.on_host = {v.name for v in graph.inputs}
        self.layers: list[dict[str, Any]] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.dequant: dict[str, dict[str, Any]] = {}

    # -- blob (weights, biases) -------------------------------------------
    def add_blob(self, data: np.ndarray) -> int:
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        offset = self.blob_size
        pad = -len(raw) % _ALIGN
        self.blob.append(np.concatenate([raw, np.zeros(pad, np.uint8)]) if pad else raw)
        self.blob_size += len(raw) + pad
        return offset

    # -- values ---------------------------------------------------------
    def new_dev(self, name: str, shape: tuple[int, ...], fmt: str, elem_bytes: int | None = None) -> str:
        nbytes = int(np.prod(shape)) * (elem_bytes or _BYTES[fmt])
        self.dev[name] = _DevValue(name, nbytes, tuple(int(s) for s in shape), fmt)
        return name

    def need_host(self, name: str) -> None:
        if not name or name in self.on_host or name in self.graph.constants:
            return
        for (value, layout, fmt), dev in self.device_of.items():
            if value == name:
                step = {"op": "download", "value": name, "dev": dev, "layout": layout,
                        "shape": list(self.graph.values[name].shape)}
                step.update(self.dequant.get(dev, {}))
                self.steps.append(step)
                self.on_host.add(name)
                return
        raise CompileError(f"internal: value {name!r} is neither on the host nor on the device")

    def need_device(self, name: str, layout: str) -> str:
        if (name, layout, self.fmt) in self.device_of:
            return self.device_of[(name, layout, self.fmt)]
        self.need_host(name)
        shape = self.device_shape(self.graph.shape(name), layout)
        dev = self.new_dev(f"{name}@{layout}.{self.fmt}", shape, self.fmt)
        step = {"op": "upload", "value": name, "dev": dev, "layout": layout, "shape": list(shape),
                "fmt": self.fmt}
        if self.fmt == "fixed":
            step["act_bits"] = FIXED_ACT_BITS
        self.steps.append(step)
        self.device_of[(name, layout, self.fmt)] = dev
        return dev

    @staticmethod
    def device_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
        if layout == "nhwc":
            n, c, h, w = shape
            return (n, h, w, c)
        return (int(np.prod(shape[:-1])), shape[-1])

    def produced_on_device(self, name: str, layout: str, dev_shape) -> str:
        dev = self.new_dev(f"{name}@{layout}.{self.fmt}", dev_shape, self.fmt)
        # a fixed-mode output has per-channel scales: only the host (dequantising) reads it
        self.device_of[(name, layout, "fixed-out" if self.fmt == "fixed" else self.fmt)] = dev
        return dev

    # -- nodes ----------------------------------------------------------
    def run(self) -> None:
        for node in self.graph.nodes:
            if node.op in KERNEL_TYPES:
                self.kernel_node(node)
            else:
                self.host_node(node)
        for value in self.graph.outputs:
            self.need_host(value.name)

    def host_node(self, node: Node) -> None:
        for name in node.inputs:
            self.need_host(name)
            if name in self.graph.constants:
                self.arrays["const/" + name] = self.graph.constants[name]
        self.steps.append({"op": "host", "node": node.name, "type": node.op,
                           "inputs": list(node.inputs), "outputs": list(node.outputs),
                           "attrs": self.json_attrs(node)})
        self.on_host.update(o for o in node.outputs if o)

    def json_attrs(self, node: Node) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.attrs.items():
            if isinstance(value, np.ndarray):
                self.arrays[f"attr/{node.name}/{key}"] = value
                out[key] = {"__array__": f"attr/{node.name}/{key}"}
            elif isinstance(value, np.generic):
                out[key] = value.item()
            else:
                out[key] = value
        return out

    def kernel_node(self, node: Node) -> None:
        layer_id = len(self.layers) + 1
        first = len(self.insns)
        # fixed mode: attention products (both operands computed at run time) stay fp32
        self.fmt = "fp32" if node.op == "BitletMatMul" and self.base_fmt == "fixed" else self.base_fmt
        if node.op == "BitletConv":
            info = self.conv(node, layer_id)
        elif node.op == "BitletDense":
            info = self.dense(node, layer_id)
        else:
            info = self.matmul(node, layer_id)
        (layout, out_dev), = [(k[1], d) for k, d in self.device_of.items() if k[0] == node.outputs[0]]
        info.update(name=node.name, origin=node.attrs.get("origin", node.name),  # strips: their conv
                    op=node.op, layer_id=layer_id, insn_first=first,
                    insn_count=len(self.insns) - first,
                    precision=self.fmt if self.fmt != "fixed" else f"fixed{self.fixed_bits}",
                    output={"value": node.outputs[0], "dev": out_dev, "layout": layout,
                            **self.dequant.get(out_dev, {})})
        self.layers.append(info)
        step = {"op": "kernel", "first": first, "count": len(self.insns) - first}
        if self.steps and self.steps[-1]["op"] == "kernel":
            self.steps[-1]["count"] += step["count"]
        else:
            self.steps.append(step)

    def layer_weights(self, node: Node) -> tuple[np.ndarray, np.ndarray, LayerOptions]:
        """(weights, bias, options) of a static kernel layer, checked and bit-budgeted."""
        name = node.attrs.get("origin", node.name)  # column strips share their layer's options
        opts = self.options.get(name, self.options.get("*", LayerOptions()))
        w = self.graph.constants[node.inputs[1]]
        bias = self.graph.constants[node.inputs[2]].astype(np.float32)
        check_finite(node.name, w)
        check_finite(node.name, bias, what="bias")
        if opts.bits is not None and self.fmt != "fixed":
            w = limit_ones(w, opts.bits)
        return w.astype(np.float32), bias, opts

    def conv(self, node: Node, layer_id: int) -> dict[str, Any]:
        x = node.inputs[0]
        w, bias, opts = self.layer_weights(node)
        n, c, h, wd = self.graph.shape(x)
        a = node.attrs
        b = _BYTES[self.fmt]
        geo = LayerGeometry(node.name, n, h, wd, c, w.shape[0], w.shape[2], w.shape[3],
                            tuple(a["strides"]), tuple(a["pads"]), tuple(a["dilations"]),
                            a["group"], fixed=self.fmt == "fixed", act_bytes=b, wgt_bytes=b,
                            out_bytes=b)
        src = self.need_device(x, "nhwc")
        oh, ow = geo.out_hw
        out = self.produced_on_device(node.outputs[0], "nhwc", (n, oh, ow, geo.cout))
        self.static_layer(node, geo, w, bias, opts, src, out, layer_id, rows_of=conv_rows)
        return self.layer_info(geo, opts, self.graph.shape(x), self.graph.shape(node.outputs[0]), w)

    def dense(self, node: Node, layer_id: int) -> dict[str, Any]:
        x = node.inputs[0]
        w, bias, opts = self.layer_weights(node)
        shape = self.graph.shape(x)
        rows = int(np.prod(shape[:-1]))
        geo = self.gemm_geometry(node.name, rows, w.shape[1], w.shape[0])
        src = self.need_device(x, "rows")
        out = self.produced_on_device(node.outputs[0], "rows", (rows, w.shape[0]))
        self.static_layer(node, geo, w, bias, opts, src, out, layer_id, rows_of=np.ascontiguousarray)
        return self.layer_info(geo, opts, shape, self.graph.shape(node.outputs[0]), w)

    def static_layer(self, node, geo, w, bias, opts, src, out, layer_id, rows_of) -> None:
        """Instructions of a layer with constant weights (float, or fixed with run-time scales)."""
        relu = node.attrs["relu"]
        if self.fmt != "fixed":
            self.emit_layer(geo, rows_of(w), bias, src, 0, out, opts, relu, layer_id)
            return
        q, scale = quantize_fixed(w, self.fixed_bits)
        if opts.bits is not None:
            q = limit_ones(q.astype(np.float32), opts.bits).astype(np.int64)
        quant = fixed_quant(q, FIXED_ACT_BITS)
        key = f"fixed/{node.name}"
        self.arrays[key + "/scale"], self.arrays[key + "/bias"] = scale, bias.astype(np.float64)
        bias_dev = self.new_dev(f"{out}.bias", (geo.cout,), "fixed", elem_bytes=8)
        self.steps.append({"op": "fixbias", "dev": bias_dev, "bias": key + "/bias",
                           "scale": key + "/scale", "input": src})
        self.dequant[out] = {"dequant": {"input": src, "scale": key + "/scale", "quant": quant}}
        self.emit_layer(geo, rows_of(q), None, src, 0, out, opts, relu, layer_id,
                        bias_dev=bias_dev, quant=quant)

    def gemm_geometry(self, name: str, rows: int, k: int, m: int) -> LayerGeometry:
        b = _BYTES[self.fmt]
        return LayerGeometry(name, rows, 1, 1, k, m, gemm=True, fixed=self.fmt == "fixed",
                             act_bytes=b, wgt_bytes=b, out_bytes=b)

    def matmul(self, node: Node, layer_id: int) -> dict[str, Any]:
        a_name, b_name = node.inputs
        a_shape, b_shape = self.graph.shape(a_name), self.graph.shape(b_name)
        batch = tuple(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
        nb, rows, k, m = int(np.prod(batch)), a_shape[-2], a_shape[-1], b_shape[-1]
        opts = self.options.get(node.name, self.options.get("*", LayerOptions()))
        geo = self.gemm_geometry(node.name, rows, k, m)
        plan = plan_layer(geo, self.cfg)
        self.need_host(a_name)
        self.need_host(b_name)
        src = self.new_dev(f"{node.outputs[0]}.a", (nb * rows, k), self.fmt)
        self.steps.append({"op": "upload", "value": a_name, "dev": src, "layout": "batch_rows",
                           "shape": [nb * rows, k], "fmt": self.fmt, "batch": list(batch)})
        tile_len = [(ke - kb) * hw.GROUP for kb, ke in plan.k_tiles]
        per_batch = sum(m * t for t in tile_len) * _BYTES[self.fmt]
        wdev = self.new_dev(f"{node.outputs[0]}.w", (nb * per_batch,), self.fmt, elem_bytes=1)
        self.steps.append({"op": "weights", "value": b_name, "dev": wdev, "fmt": self.fmt,
                           "batch": list(batch), "k_tiles": [list(t) for t in plan.k_tiles],
                           "layer": node.name, "bits": opts.bits})
        out = self.produced_on_device(node.outputs[0], "batch_rows", (nb * rows, m))
        for i in range(nb):
            self.emit_layer(geo, None, None, src, i * rows * k * _BYTES[self.fmt], out, opts,
                            node.attrs["relu"], layer_id, dyn_weights=(wdev, i * per_batch),
                            out_base=i * rows * m * _BYTES[self.fmt], plan=plan)
        info = self.layer_info(geo, opts, a_shape, self.graph.shape(node.outputs[0]), None)
        info["macs"] *= nb
        return info

    def layer_info(self, geo: LayerGeometry, opts: LayerOptions, in_shape, out_shape, w) -> dict:
        return {"input_shape": list(in_shape), "output_shape": list(out_shape),
                "weight_shape": None if w is None else list(w.shape), "macs": geo.macs,
                "prune": opts.prune, "bits": opts.bits, "k": geo.k, "groups": geo.groups}

    # -- instructions -----------------------------------------------------
    def emit_layer(self, geo: LayerGeometry, w_rows, bias, src: str, src_off: int, out: str,
                   opts: LayerOptions, relu: bool, layer_id: int, dyn_weights=None, out_base: int = 0,
                   plan=None, bias_dev: str | None = None, quant: int = 0) -> None:
        """Instructions of one layer: output-channel tiles x K tiles (PARTIAL/ACCUM chain)."""
        plan = plan or plan_layer(geo, self.cfg)
        if geo.groups == 1:
            tiles = [(c0, c1, 0, 1) for c0, c1 in channel_tiles(geo, plan, self.cfg)]
        else:
            tiles = [(g0 * geo.cout_g, g1 * geo.cout_g, g0, g1) for g0, g1 in plan.group_tiles]
        wb = _BYTES[self.fmt]
        if dyn_weights is None:
            k_offsets = [self.add_blob(device_rows(w_rows, self.fmt, kt)) for kt in plan.k_tiles]
            bias_off = self.add_blob(bias.view(np.uint32)) if bias is not None else 0
            wref = "blob"
        else:
            wref, base = dyn_weights
            k_offsets, off = [], base
            for kb, ke in plan.k_tiles:
                k_offsets.append(off)
                off += geo.cout * (ke - kb) * hw.GROUP * wb
            bias_off = None
        partials = dict(zip(partial_buffers(len(plan.k_tiles)),
                            self.partial_buffers(geo, out, len(plan.k_tiles))))
        has_bias = bias_off is not None or bias_dev is not None
        code = isa.fmt_code(self.fmt)
        for item in layer_instructions(geo, plan.k_tiles, wfmt=code, tiles=tiles, relu=relu,
                                       bias=has_bias, prune=opts.prune,
                                       quant=quant if geo.fixed else 0,
                                       fixbits=self.fixed_bits if geo.fixed else 0,
                                       layer=layer_id):
            kb, ke = plan.k_tiles[item.k_tile]
            last = item.out == "out"
            refs = {"act": ("val", src, src_off),
                    "wgt": ("blob" if wref == "blob" else "val", wref,
                            k_offsets[item.k_tile] + item.co0 * (ke - kb) * hw.GROUP * wb),
                    "out": ("val", out, out_base) if last else ("val", partials[item.out], 0)}
            if item.bias and bias_dev is not None:
                refs["bias"] = ("val", bias_dev, item.co0 * 8)
            elif item.bias:
                refs["bias"] = ("blob", "blob", bias_off + item.co0 * 4)
            if item.acc is not None:
                refs["acc"] = ("val", partials[item.acc], 0)
            self.insns.append(_Insn(item.insn, refs))

    def partial_buffers(self, geo: LayerGeometry, out: str, n_k: int) -> list[str]:
        if n_k == 1:
            return []
        oh, ow = geo.out_hw
        count = geo.n * oh * ow * geo.cout
        return [self.new_dev(f"{out}.partial{i}", (count,), self.fmt, elem_bytes=8 if geo.fixed else 4)
                for i in range(len(partial_buffers(n_k)))]

    # -- memory plan and image --------------------------------------------
    def plan_memory(self) -> dict[str, Any]:
        self.liveness()
        placed: list[_DevValue] = []
        for value in sorted(self.dev.values(), key=lambda v: -v.nbytes):
            value.offset = _first_fit(value, placed)
            placed.append(value)
        pool = max((v.offset + v.nbytes for v in placed), default=0)
        n = len(self.insns)
        prof_off = _round_up(n * hw.INSN_BYTES, _ALIGN)
        blob_off = _round_up(prof_off + n * hw.PROF_BYTES, _ALIGN)
        pool_off = _round_up(blob_off + self.blob_size, _ALIGN)
        return {"n_insn": n, "insn_offset": 0, "profile_offset": prof_off, "blob_offset": blob_off,
                "blob_bytes": self.blob_size, "pool_offset": pool_off, "pool_bytes": pool,
                "pool_naive_bytes": sum(v.nbytes for v in placed),
                "total_bytes": pool_off + pool, "image_bytes": pool_off}

    def liveness(self) -> None:
        """Live ranges on a timeline of one tick per host/transfer step and per instruction."""
        tick, insn_tick = 0, {}
        for step in self.steps:
            if step["op"] == "kernel":
                for i in range(step["first"], step["first"] + step["count"]):
                    insn_tick[i] = tick
                    tick += 1
            else:
                if "dev" in step:
                    self.touch(step["dev"], tick)
                tick += 1
        for i, item in enumerate(self.insns):
            for kind, name, _ in item.refs.values():
                if kind == "val":
                    self.touch(name, insn_tick[i])

    def touch(self, name: str, step: int) -> None:
        v = self.dev[name]
        v.first = step if v.first < 0 else min(v.first, step)
        v.last = max(v.last, step)

    def image(self, plan: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        image = np.zeros(plan["image_bytes"], np.uint8)
        reloc = np.zeros(len(self.insns), np.uint8)
        words = image[: len(self.insns) * hw.INSN_BYTES].view("<u4").reshape(-1, hw.INSN_WORDS)
        for i, item in enumerate(self.insns):
            fields = {}
            for key, (kind, name, off) in item.refs.items():
                base = plan["blob_offset"] if kind == "blob" else plan["pool_offset"] + self.dev[name].offset
                fields[key] = base + off
                reloc[i] |= 1 << ADDRESS_FIELDS.index(key.upper())
            words[i] = item.insn.replace(**fields).encode()
        pos = plan["blob_offset"]
        for chunk in self.blob:
            image[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        return image, reloc


def _round_up(x: int, a: int) -> int:
    return -(-x // a) * a


def _first_fit(value: _DevValue, placed: list[_DevValue]) -> int:
    busy = sorted((p.offset, p.offset + p.nbytes) for p in placed
                  if not (p.last < value.first or value.last < p.first))
    offset = 0
    for start, end in busy:
        if offset + value.nbytes <= start:
            break
        offset = max(offset, _round_up(end, _ALIGN))
    return offset


def lower(graph: Graph, cfg: KernelConfig, precision: str = "fp32",
          options: dict[str, LayerOptions] | None = None, model_name: str = "model") -> Program:
    """Compile an optimised graph into a :class:`Program` for kernel configuration ``cfg``."""
    fmt, _ = parse_precision(precision)
    if fmt not in cfg.formats:
        raise CompileError(f"precision {precision!r} is not supported by this kernel "
                           f"(formats {list(cfg.formats)})")
    graph = split_wide_convs(graph, cfg, fixed=fmt == "fixed")
    low = Lowering(graph, cfg, precision, options or {})
    low.run()
    plan = low.plan_memory()
    image, reloc = low.image(plan)
    arrays = dict(low.arrays, __reloc__=reloc)
    for value in graph.outputs:
        if value.name in graph.constants:
            arrays["const/" + value.name] = graph.constants[value.name]
    meta = {
        "model": model_name,
        "sdk_version": __version__,
        "isa_version": cfg.isa_version,
        "kernel": cfg.as_dict(),
        "precision": precision,
        "inputs": [{"name": v.name, "shape": list(v.shape), "dtype": v.dtype} for v in graph.inputs],
        "outputs": [{"name": v.name, "shape": list(v.shape), "dtype": v.dtype} for v in graph.outputs],
        "steps": low.steps,
        "devices": {k: {"offset": v.offset, "nbytes": v.nbytes, "shape": list(v.shape), "fmt": v.fmt,
                        "live": [v.first, v.last]} for k, v in low.dev.items()},
        "layers": low.layers,
        "buffers": plan,
    }
    return Program(meta, image, arrays)
