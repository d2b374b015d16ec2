"""The per-layer profile of one inference: :class:`Profile` (what
``model.profile(x)`` returns for a local and a remote model alike)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Profile"]


@dataclass
class Profile:
    """Per-layer profile of one inference (plain data: :meth:`as_dict`).

    ``pe_cycles``, ``ref_cycles`` and ``kernel_cycles`` are always the
    kernel's modelled (counted) cycles; ``clock_cycles`` (END - START stamps
    of the layer's instructions) are measured on a board and modelled on a
    simulator: ``cycles`` says which.
    """

    layers: list[dict[str, Any]]
    host: list[dict[str, Any]]
    totals: dict[str, Any]
    clock_mhz: int
    device: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    cycles: str = "modelled"

    def as_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "host": self.host, "totals": self.totals,
                "clock_mhz": self.clock_mhz, "device": self.device, "cycles": self.cycles}

    def __str__(self) -> str:
        clk = "measured" if self.cycles == "measured" else "modelled"
        head = (f"{'layer':<28} {'op':<13} {'output':<18} {'MMAC':>8} {'prec':>5} {'prune':>8} "
                f"{'PE cyc (m)':>11} {'kernel cyc(m)':>13} {'clock cyc':>11} {'pred ms':>8} "
                f"{'DDR KB':>9}")
        lines = [head, "-" * len(head)]
        for l in self.layers:
            lines.append(f"{l['name'][:28]:<28} {l['op'][6:]:<13} {str(tuple(l['output_shape']))[:18]:<18} "
                         f"{l['macs'] / 1e6:>8.3f} {l['precision']:>5} {l['prune']:>8x} "
                         f"{l['pe_cycles']:>11,} {l['kernel_cycles']:>13,} "
                         f"{l['clock_cycles']:>11,} "
                         f"{l['predicted_ms']:>8.3f} {l['ddr_bytes'] / 1024:>9.1f}")
        t = self.totals
        lines.append("-" * len(head))
        lines.append(f"{'total kernel (' + str(t['kernel_layers']) + ' layers)':<61} "
                     f"{t['macs'] / 1e6:>8.3f} {'':>14} {t['pe_cycles']:>11,} "
                     f"{t['kernel_cycles']:>13,} {t['clock_cycles']:>11,} "
                     f"{t['predicted_ms']:>8.3f} {t['ddr_bytes'] / 1024:>9.1f}")
        lines.append(f"cycles: PE and kernel cycles (m) are modelled (the kernel's counted "
                     f"cycle model); clock cycles (END - START stamps) are {clk}"
                     + (" on this simulator" if clk == "modelled" else " on the board"))
        lines.append(f"host: {t['host_ops']} ops {t['host_ms']:.3f} ms, transfers "
                     f"{t['transfer_ms']:.3f} ms, kernel wall {t['kernel_wall_ms']:.3f} ms "
                     f"(reference schedule {t['ref_cycles']:,} cycles); clock {self.clock_mhz} MHz")
        by_type = list(self.host_by_type().items())
        for start in range(0, len(by_type), 6):  # six op types a line, slowest first
            lines.append(("host ops by type: " if start == 0 else "host ops, cont.:  ") + ", ".join(
                f"{op} {v['count']}x {v['ms']:.3f} ms" for op, v in by_type[start:start + 6]))
        mem = t.get("memory")
        if mem:
            lines.append(f"device memory: {t['device_bytes'] / 1024:.1f} KiB peak = instructions and "
                         f"profile {mem['program_bytes'] / 1024:.1f} + weights "
                         f"{mem['weight_bytes'] / 1024:.1f} + activations "
                         f"{mem['activation_bytes'] / 1024:.1f} KiB (without buffer reuse: "
                         f"{mem['activation_bytes_without_reuse'] / 1024:.1f} KiB)")
        return "\n".join(lines)

    def host_by_type(self) -> dict[str, dict[str, float]]:
        """Host time per op type, slowest first: ``{op: {"count": n, "ms": total}}``."""
        out: dict[str, dict[str, float]] = {}
        for h in self.host:
            entry = out.setdefault(h["op"], {"count": 0, "ms": 0.0})
            entry["count"] += 1
            entry["ms"] += h["ms"]
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["ms"]))
