"""The HLS rules checker (hls/tools/hls_rules.py): every rule catches a planted
violation at the right line, leaves the allowed form of the same code alone,
and the project's own hls/ sources pass."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "hls" / "tools"
sys.path.insert(0, str(TOOLS))
import hls_rules

HEADER = """\
#ifndef HW_H
#define HW_H
#include <stdint.h>
#define BITLET_ACT_BUF_WORDS 1024
#define BITLET_OUT_BUF_WORDS 256
#define GROUP 64
#endif
"""


def write(tmp_path: Path, files: dict) -> Path:
    """Write a small hls/ directory (hw.h plus ``files``) and return it."""
    d = tmp_path / "hls"
    d.mkdir(parents=True, exist_ok=True)
    (d / "hw.h").write_text(HEADER)
    for name, text in files.items():
        (d / name).write_text(textwrap.dedent(text))
    return d


def line_of(d: Path, name: str, marker: str = "HERE") -> int:
    """Line of the first ``marker`` comment in file ``name``."""
    for i, line in enumerate((d / name).read_text().splitlines(), 1):
        if marker in line:
            return i
    raise AssertionError(f"no {marker} in {name}")


def found(d: Path, rule: str | None = None) -> list:
    return [(Path(v.file).name, v.line, v.rule) for v in hls_rules.check([d])
            if rule is None or v.rule == rule]


# --------------------------------------------------------------- division
PIPE_DIV = """\
#include "hw.h"
static uint32_t idx(uint32_t k, uint32_t n) { return k % n; } /* CALLEE */
void f(uint32_t *a, uint32_t n, uint32_t m) {
    uint32_t j, acc = 0;
    for (j = 0; j < m; j++) {
#pragma HLS PIPELINE II=1
        acc += a[j] / n; /* HERE */
        acc += a[j] / GROUP + a[j] % 16u + (a[j] >> 2) / sizeof(uint32_t);
        acc += idx(j, n);
    }
    a[0] = acc / n;
}
"""


def test_div_in_pipeline_direct_and_through_a_call(tmp_path):
    d = write(tmp_path, {"k.c": PIPE_DIV})
    got = found(d, "div-in-pipeline")
    assert got == [("k.c", line_of(d, "k.c", "CALLEE"), "div-in-pipeline"),
                   ("k.c", line_of(d, "k.c"), "div-in-pipeline")]


def test_div_compound_assignment_in_nested_loop(tmp_path):
    d = write(tmp_path, {"k.c": """\
        #include "hw.h"
        void f(uint32_t *a, uint32_t n) {
            uint32_t i, j;
            for (i = 0; i < n; i++) {
        #pragma HLS PIPELINE
                for (j = 0; j < 4; j++) {
                    a[j] %= n; /* HERE */
                    a[j] /= 8;
                }
            }
        }
        """})
    assert found(d, "div-in-pipeline") == [("k.c", line_of(d, "k.c"), "div-in-pipeline")]


def test_div_outside_pipeline_and_const_divisors_are_allowed(tmp_path):
    d = write(tmp_path, {"k.c": """\
        #include "hw.h"
        enum { LANES = 4 };
        void f(uint32_t *a, uint32_t n) {
            const uint32_t half = GROUP / 2;
            uint32_t j, per = n / 3u;
            for (j = 0; j < n; j++) {
        #pragma HLS PIPELINE off
                a[j] = a[j] / n;
            }
            for (j = 0; j < n; j++) {
        #pragma HLS PIPELINE II=1
                a[j] = a[j] / LANES + a[j] % half + a[j] / (uint32_t)GROUP + per;
            }
        }
        """})
    assert found(d, "div-in-pipeline") == []


def test_div_by_a_parameter_follows_the_call_site(tmp_path):
    """A helper dividing by its parameter is a divider only where a call passes
    a runtime value (HLS inlines and folds constant arguments)."""
    d = write(tmp_path, {"k.c": """\
        #include "hw.h"
        static uint32_t units(uint32_t bytes, uint32_t eu) { return bytes / eu; } /* HERE */
        static uint32_t pick(uint32_t fmt, uint32_t x, uint32_t n) {
            if (fmt == 1u)
                return x % n;      /* dead when fmt is the constant 0 */
            return x;
        }
        void f(uint32_t *a, uint32_t n, uint32_t eu) {
            uint32_t j;
            for (j = 0; j < n; j = j + 1) {
        #pragma HLS PIPELINE II=1
                a[j] = units(a[j], 4u) + pick(0u, a[j], n);
            }
            for (j = 0; j < n; j++) { /* LOOP2 */
        #pragma HLS PIPELINE II=1
                a[j] = units(a[j], eu);
            }
        }
        """})
    assert found(d, "div-in-pipeline") == [("k.c", line_of(d, "k.c"), "div-in-pipeline")]
    msg, = [v.message for v in hls_rules.check([d]) if v.rule == "div-in-pipeline"]
    assert msg.endswith(f"k.c:{line_of(d, 'k.c', 'LOOP2')} (via units)")


# --------------------------------------------------------------- loop bounds
def test_loop_bound_in_pipeline(tmp_path):
    d = write(tmp_path, {"k.c": """\
        #include "hw.h"
        static uint32_t norm(uint32_t m) {
            while ((m & 0x400u) == 0u) /* WHILE */
                m <<= 1;
            return m;
        }
        void f(uint32_t *a, uint32_t n) {
            uint32_t i, j;
            for (i = 0; i < n; i++) {          /* the pipelined loop: variable count is fine */
        #pragma HLS PIPELINE II=1
                for (j = 0; j < n; j++)        /* HERE */
                    a[j] += 1u;
                for (j = 0; j < n; j++) {      /* fully unrolled: exempt */
        #pragma HLS UNROLL
                    a[j] += 2u;
                }
                for (j = 0; j < GROUP; j += 2) /* constant bound */
                    a[j] += 3u;
                for (j = i; j < 8; j++) {      /* START */
        #pragma HLS UNROLL factor=2
                    a[j] += 4u;
                }
                a[i] = norm(a[i]);
            }
        }
        """})
    assert found(d, "loop-bound-in-pipeline") == [
        ("k.c", line_of(d, "k.c", "WHILE"), "loop-bound-in-pipeline"),
        ("k.c", line_of(d, "k.c"), "loop-bound-in-pipeline"),
        ("k.c", line_of(d, "k.c", "START"), "loop-bound-in-pipeline")]


def test_loop_bound_function_level_pipeline(tmp_path):
    d = write(tmp_path, {"k.c": """\
        #include "hw.h"
        uint32_t f(const uint32_t *a, uint32_t n) {
        #pragma HLS PIPELINE II=1
            uint32_t s = 0, j = 0;
            do { /* HERE */
                s += a[j++];
            } while (j < n);
            return s;
        }
        """})
    assert found(d, "loop-bound-in-pipeline") == [
        ("k.c", line_of(d, "k.c"), "loop-bound-in-pipeline")]


# --------------------------------------------------------------- float
def test_float_type_in_kernel_and_its_headers(tmp_path):
    d = write(tmp_path, {
        "acc.h": """\
            typedef float real_t; /* TYPEDEF */
            typedef struct { uint32_t bits; } ok_t;
            """,
        "bitlet_kernel.c": """\
            #include "hw.h"
            #include "acc.h"
            static uint32_t g(uint32_t u) {
                real_t x; /* USE */
                ok_t y;
                y.bits = (uint32_t)(double)u; /* HERE */
                x = 0;
                return y.bits + (uint32_t)x;
            }
            uint32_t h(uint32_t u) { return g(u) + 0.5f > 1 ? 1u : 0u; } /* LITERAL */
            """,
    })
    got = found(d, "float-type")
    assert got == sorted([
        ("acc.h", line_of(d, "acc.h", "TYPEDEF"), "float-type"),
        ("bitlet_kernel.c", line_of(d, "bitlet_kernel.c", "USE"), "float-type"),
        ("bitlet_kernel.c", line_of(d, "bitlet_kernel.c"), "float-type"),
        ("bitlet_kernel.c", line_of(d, "bitlet_kernel.c", "LITERAL"), "float-type")])


def test_float_opt_out_vendor_and_marked_files(tmp_path):
    prose = write(tmp_path / "prose", {"bitlet_kernel.c": (
        "/* vendor_kernel.c may say hls-rules: allow float-type; this file does not */\n"
        "#include \"hw.h\"\nfloat k(float a) { return a; }\n")})
    assert [r for _, _, r in found(prose, "float-type")] == ["float-type"]
    d = write(tmp_path, {
        "vendor_kernel.c": "#include \"hw.h\"\nfloat v(float a) { return a * 2.0f; }\n",
        "fp_ref.c": "/* hls-rules: allow float-type (host reference) */\n"
                    "#include \"hw.h\"\ndouble r(double a) { return a; }\n",
    })
    assert found(d, "float-type") == []


# --------------------------------------------------------------- PE multiply
PE = """\
/* Host-only helpers carry the mark hls-rules: host-only (this prose marks nothing). */
#include "hw.h"
int64_t mac(const int32_t a[64], const uint32_t w[64]) {
    int64_t acc = 0;
    int k;
    for (k = 0; k < 64; k++) {
#pragma HLS UNROLL
        acc += (int64_t)a[k] * w[k]; /* HERE */
        acc += a[k] * 3 + GROUP * k;
    }
    return acc;
}
/* hls-rules: host-only
 * (the batch wrapper for Python) */
void pe_batch(int64_t n, const int32_t *a, const uint32_t *w, int64_t *out) {
    int64_t i;
    for (i = 0; i < n; i++)
        out[i] = mac(a + i * n, w + i * n);
}
int64_t bitlet_pe_group_batch(int64_t n, int64_t m) { return n * m; }
/* hls-rules: host-only */
static const int64_t SCALE = 3;
int64_t scaled(int64_t x, int64_t y) { return x * y * SCALE; } /* MARK-TOO-FAR */
"""


def test_pe_multiply_and_host_only_exemptions(tmp_path):
    d = write(tmp_path, {"bitlet_pe.c": PE})
    assert found(d, "pe-multiply") == [
        ("bitlet_pe.c", line_of(d, "bitlet_pe.c"), "pe-multiply"),
        ("bitlet_pe.c", line_of(d, "bitlet_pe.c", "MARK-TOO-FAR"), "pe-multiply")]
    # the same code outside the PE files is not the PE's business
    d2 = write(tmp_path / "other", {"kernel.c": PE})
    assert found(d2, "pe-multiply") == []


def test_host_only_function_called_from_a_top(tmp_path):
    d = write(tmp_path, {"bitlet_pe.c": PE + """\
        void top(int64_t *out, const int32_t *a, const uint32_t *w) {
        #pragma HLS INTERFACE mode=m_axi port=out
            pe_batch(1, a, w, out);
        }
        """})
    assert found(d, "host-only") == [("bitlet_pe.c", line_of(d, "bitlet_pe.c", "void pe_batch"),
                                      "host-only")]


# --------------------------------------------------------------- recursion etc.
def test_recursion_direct_and_mutual(tmp_path):
    d = write(tmp_path, {"k.c": """\
        #include "hw.h"
        static uint32_t odd(uint32_t n);
        static uint32_t even(uint32_t n) { return n == 0 ? 1u : odd(n - 1u); } /* EVEN */
        static uint32_t odd(uint32_t n) { return n == 0 ? 0u : even(n - 1u); } /* ODD */
        uint32_t fact(uint32_t n) { return n < 2u ? 1u : n * fact(n - 1u); } /* HERE */
        uint32_t fine(uint32_t n) { return even(n) + fact(n); }
        """})
    assert found(d, "recursion") == [("k.c", line_of(d, "k.c", "EVEN"), "recursion"),
                                     ("k.c", line_of(d, "k.c", "ODD"), "recursion"),
                                     ("k.c", line_of(d, "k.c"), "recursion")]


def test_dynamic_memory(tmp_path):
    d = write(tmp_path, {"k.c": """\
        #include <stdlib.h>
        #include "hw.h"
        uint32_t f(uint32_t n) {
            uint32_t *p = (uint32_t *)malloc(n * sizeof(uint32_t)); /* HERE */
            uint32_t vla[n]; /* VLA */
            uint32_t fixed[GROUP];
            vla[0] = p[0] + fixed[0];
            free(p); /* FREE */
            return vla[0];
        }
        """})
    assert found(d, "dynamic-memory") == [("k.c", line_of(d, "k.c"), "dynamic-memory"),
                                          ("k.c", line_of(d, "k.c", "VLA"), "dynamic-memory"),
                                          ("k.c", line_of(d, "k.c", "FREE"), "dynamic-memory")]


def test_function_pointers(tmp_path):
    d = write(tmp_path, {"k.c": """\
        #include "hw.h"
        typedef uint32_t (*op_t)(uint32_t); /* TYPEDEF */
        static uint32_t inc(uint32_t x) { return x + 1u; }
        static uint32_t apply(uint32_t (*g)(uint32_t), uint32_t x) { /* PARAM */
            return g(x); /* CALL */
        }
        uint32_t f(uint32_t x) {
            return apply(inc, x) + inc(x); /* VALUE */
        }
        """})
    assert found(d, "function-pointer") == [
        ("k.c", line_of(d, "k.c", "TYPEDEF"), "function-pointer"),
        ("k.c", line_of(d, "k.c", "PARAM"), "function-pointer"),
        ("k.c", line_of(d, "k.c", "CALL"), "function-pointer"),
        ("k.c", line_of(d, "k.c", "VALUE"), "function-pointer")]


# --------------------------------------------------------------- ARRAY_PARTITION scope
def test_array_partition_scope(tmp_path):
    d = write(tmp_path, {"k.c": """\
        #include "hw.h"
        static uint32_t gbuf[256];
        static void g(uint32_t a[GROUP], uint32_t *p) {
            uint32_t loc[GROUP], scalar = 0;
        #pragma HLS ARRAY_PARTITION variable=a type=complete
        #pragma HLS ARRAY_PARTITION variable=loc type=cyclic factor=4
        #pragma HLS ARRAY_PARTITION variable=gbuf type=cyclic factor=2
        #pragma HLS ARRAY_PARTITION variable=other type=complete /* HERE */
        #pragma HLS ARRAY_PARTITION variable=scalar type=complete /* SCALAR */
        #pragma HLS ARRAY_PARTITION variable=p type=complete /* PTR */
            loc[0] = a[0] + scalar + p[0] + gbuf[0];
        }
        void f(uint32_t a[GROUP]) {
            uint32_t other[GROUP];
            other[0] = 0;
            g(other, a);
        }
        """})
    assert found(d, "array-partition-scope") == [
        ("k.c", line_of(d, "k.c"), "array-partition-scope"),
        ("k.c", line_of(d, "k.c", "SCALAR"), "array-partition-scope"),
        ("k.c", line_of(d, "k.c", "PTR"), "array-partition-scope")]


# --------------------------------------------------------------- budgets
def test_on_chip_budget_per_buffer_and_total(tmp_path):
    d = write(tmp_path, {"k.c": """\
        #include "hw.h"
        #define ACT_BANKS 4
        #define BANK_WORDS (BITLET_ACT_BUF_WORDS / ACT_BANKS)
        static uint32_t act[2][ACT_BANKS][BANK_WORDS]; /* HERE */
        static uint32_t out_buf[BITLET_OUT_BUF_WORDS];
        void top(uint32_t *mem) {
        #pragma HLS INTERFACE mode=m_axi port=mem
            act[0][0][0] = mem[0];
            out_buf[0] = mem[1];
        }
        """})
    assert found(d, "on-chip-budget") == [("k.c", line_of(d, "k.c"), "on-chip-budget")]
    msgs = [v.message for v in hls_rules.check([d]) if v.rule == "on-chip-budget"]
    assert "BITLET_ACT_BUF_WORDS" in msgs[0] and "65536 bits > budget 32768" in msgs[0]


def test_on_chip_budget_total_and_within_budget(tmp_path):
    ok = write(tmp_path, {"k.c": """\
        #include "hw.h"
        static uint32_t act[BITLET_ACT_BUF_WORDS];
        static uint64_t out_buf[BITLET_OUT_BUF_WORDS / 2];
        void top(uint32_t *mem) {
        #pragma HLS INTERFACE mode=m_axi port=mem
            uint32_t small[GROUP];
            small[0] = mem[0];
            act[0] = small[0];
            out_buf[0] = mem[1];
        }
        """})
    assert found(ok, "on-chip-budget") == []
    # 1024 + 256 words budget, 1/16 scratch: 1360 words; a 512-word scratch array is too much
    big = write(tmp_path / "big", {"k.c": """\
        #include "hw.h"
        static uint32_t act[BITLET_ACT_BUF_WORDS];
        void top(uint32_t *mem) {
        #pragma HLS INTERFACE mode=m_axi port=mem
            static uint32_t scratch[512]; /* HERE */
            scratch[0] = mem[0];
            act[0] = scratch[0];
        }
        """})
    assert found(big, "on-chip-budget") == [("k.c", line_of(big, "k.c"), "on-chip-budget")]


# --------------------------------------------------------------- driver
def test_cli_output_format_and_exit_codes(tmp_path):
    d = write(tmp_path, {"k.c": PIPE_DIV})
    script = [sys.executable, str(TOOLS / "hls_rules.py")]
    bad = subprocess.run(script + [str(d)], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert bad.returncode == 1, bad.stderr
    lines = bad.stdout.splitlines()
    assert lines[0] == (f"hls/k.c:{line_of(d, 'k.c', 'CALLEE')}: div-in-pipeline: runtime '%' "
                        "by non-constant `n` inside PIPELINE loop at hls/k.c:5 (via idx)")
    assert all(ln.count(": ") >= 2 for ln in lines) and len(lines) == 2
    clean = write(tmp_path / "clean", {"k.c": "#include \"hw.h\"\nint f(int a) { return a; }\n"})
    good = subprocess.run(script + [str(clean)], capture_output=True, text=True, check=False)
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")
    missing = subprocess.run(script + [str(tmp_path / "nope")], capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_parse_error_is_one_violation_with_a_line(tmp_path):
    d = write(tmp_path, {"k.c": "#include \"hw.h\"\nint f(int a) {\n    unknown_t x = a; /* HERE */\n"
                                "    return x;\n}\n"})
    assert found(d) == [("k.c", line_of(d, "k.c"), "parse")]


def test_every_rule_is_listed_and_implemented():
    names = {f.__name__.removeprefix("rule_").replace("_", "-")
             for f in hls_rules.RULE_FUNCTIONS}
    assert names | {"parse"} == set(hls_rules.RULES)


def test_pragmas_survive_preprocessing(tmp_path):
    """gcc -E keeps `#pragma HLS` lines; pycparser keeps them as Pragma nodes in place."""
    d = write(tmp_path, {"k.c": PIPE_DIV})
    project = hls_rules.Project(hls_rules.source_files([d]))
    f = next(g for g in project.functions() if g.name == "f")
    (p, loop), = f.pragmas
    assert p.directive == "PIPELINE" and p.options == {"ii": "1"} and loop.pipelined


def test_project_hls_sources_pass():
    violations = hls_rules.check([ROOT / "hls"])
    assert violations == [], "\n".join(map(str, violations))


def test_project_hls_sources_pass_in_the_rtl_pe_build():
    """-DBITLET_RTL_PE (run_hls.tcl with BITLET_RTL_PE=1): the kernel calls the
    RTL blackbox bitlet_pe_bb() instead of the C PE stages."""
    violations = hls_rules.check([ROOT / "hls"], defines={"BITLET_RTL_PE": None})
    assert violations == [], "\n".join(map(str, violations))
