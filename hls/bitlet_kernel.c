/*
 * bitlet_kernel.c -- the Bitlet kernel top: an instruction loop executing
 * GEMM / CONV2D layers held in DDR on an array of BITLET_N_PE Bitlet PEs.
 *
 * Semantics: NUMERICS.md sections 5 and 6 (group split with zero padding,
 * binary32 group sums from +0.0, exact int64 sums in fixed mode, bias, ReLU,
 * canonical NaN, RNE 16-bit outputs).  Layouts and fields: bitlet_hw.h.
 * Schedule and cycle model: hls/README.md ("Cycle model").
 *
 * The instruction-level machinery (fetch, decode, validation, bus checks,
 * buffers, output stage, profile) is shared with the vendor-FP baseline top
 * (vendor_kernel.c) through bk_run(kind, ...); only the per-pixel datapath
 * differs (bitlet_pixel here, vendor_pixel there).
 *
 * HLS style: fixed-width types, static on-chip buffers of the header's
 * sizes, no recursion, no dynamic memory, data-dependent loops annotated
 * with LOOP_TRIPCOUNT.
 */
#include <stdint.h>
#include "bitlet_hw.h"
#include "bitlet_pe.h"
#include "bitlet_top.h"

#define WORD_BYTES      4u
#define FP32_EXP_MASK   0x7F800000u
#define FP32_MANT_MASK  0x007FFFFFu
#define FIX_ACT_MAX     16777215     /* 2^24 - 1 */
#define FIX_ACT_MIN     (-16777216)  /* -2^24    */
#define FIX_WORD_MASK   0x80FFFFFFu  /* sign | 24-bit magnitude */

/* ------------------------------------------------------------------ */
/* On-chip buffers                                                     */
/* ------------------------------------------------------------------ */
static uint32_t act_buf[BITLET_ACT_BUF_WORDS];   /* PE words, [slot][x][c]  */
static uint32_t wgt_buf[BITLET_WGT_BUF_WORDS];   /* weight words, [row][j]  */
static uint32_t out_buf[BITLET_OUT_BUF_WORDS];   /* row of results          */
static uint32_t bias_buf[BITLET_BIAS_BUF_WORDS]; /* fp32 bits or int64 lo/hi*/
static uint32_t wgt_row0;      /* wgt_buf row of the current batch's channel 0 */
static int64_t act_rows_lo;    /* input rows [lo, hi) held in act_buf        */
static int64_t act_rows_hi;

/* ------------------------------------------------------------------ */
/* Number formats                                                      */
/* ------------------------------------------------------------------ */
typedef union { uint32_t u; float f; } bk_fu_t;

float bk_bits_to_float(uint32_t u)
{
    bk_fu_t x;
    x.u = u;
    return x.f;
}

static uint32_t float_to_bits(float f)
{
    bk_fu_t x;
    x.f = f;
    return x.u;
}

static int is_nan_bits(uint32_t u)
{
    return (u & FP32_EXP_MASK) == FP32_EXP_MASK && (u & FP32_MANT_MASK) != 0u;
}

/* binary16 -> binary32, exact. */
static uint32_t fp16_to_fp32(uint32_t h)
{
    uint32_t sign = (h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu;
    uint32_t m = h & 0x3FFu;
    if (e == 0x1Fu)
        return sign | FP32_EXP_MASK | (m << 13);
    if (e != 0u)
        return sign | ((e + 112u) << 23) | (m << 13);
    if (m == 0u)
        return sign;
    /* subnormal: normalise (value m * 2^-24) */
    e = 113u;
    while ((m & 0x400u) == 0u) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=10
        m <<= 1;
        e--;
    }
    return sign | (e << 23) | ((m & 0x3FFu) << 13);
}

/* binary32 -> binary16, round to nearest even; NaN -> canonical. */
static uint32_t fp32_to_fp16(uint32_t u)
{
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t e = (int32_t)((u >> 23) & 0xFFu);
    uint32_t m = u & FP32_MANT_MASK;
    uint32_t sig, shift, q, rem, half;
    if (is_nan_bits(u))
        return BITLET_CANONICAL_NAN_FP16;
    if (e == 0xFF)
        return sign | 0x7C00u;
    if (e > 142)                       /* >= 2^16: overflow */
        return sign | 0x7C00u;
    if (e >= 113) {                    /* normal binary16 range */
        q = ((uint32_t)(e - 112) << 10) | (m >> 13);
        rem = m & 0x1FFFu;
        if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
            q++;                       /* may carry into Inf: correct */
        return sign | q;
    }
    if (e < 102)                       /* < 2^-25 (half of min subnormal) */
        return sign;
    sig = m | 0x800000u;               /* value sig * 2^(e-150) */
    shift = (uint32_t)(126 - e);       /* to units of 2^-24: 14..24 */
    q = sig >> shift;
    rem = sig & ((1u << shift) - 1u);
    half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u)))
        q++;
    return sign | q;
}

/* bfloat16 <-> binary32 */
static uint32_t bf16_to_fp32(uint32_t h)
{
    return (h & 0xFFFFu) << 16;
}

static uint32_t fp32_to_bf16(uint32_t u)
{
    if (is_nan_bits(u))
        return BITLET_CANONICAL_NAN_BF16;
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

/* fixed activation (int32) -> PE word: sign << 31 | bits 23..0, clamped. */
static uint32_t fixed_act_word(uint32_t raw)
{
    int32_t v = (int32_t)raw;
    if (v > FIX_ACT_MAX)
        v = FIX_ACT_MAX;
    if (v < FIX_ACT_MIN)
        v = FIX_ACT_MIN;
    return (v < 0 ? 0x80000000u : 0u) | ((uint32_t)v & BITLET_PRUNE_MASK);
}

static uint32_t elem_bytes(uint32_t fmt)
{
    return (fmt == BITLET_FMT_FP16 || fmt == BITLET_FMT_BF16) ? 2u : 4u;
}

/* Element of a given format -> binary32 bits (float formats). */
static uint32_t widen(uint32_t raw, uint32_t fmt)
{
    if (fmt == BITLET_FMT_FP16)
        return fp16_to_fp32(raw);
    if (fmt == BITLET_FMT_BF16)
        return bf16_to_fp32(raw);
    return raw;
}

/* ------------------------------------------------------------------ */
/* DDR access (addresses already checked against the window)           */
/* ------------------------------------------------------------------ */
static uint32_t rd32(uint32_t *mem, bk_bus_t *bus, uint64_t addr)
{
    bus->ddr += 4u;
    return mem[(addr - bus->base) >> 2];
}

static void wr32(uint32_t *mem, bk_bus_t *bus, uint64_t addr, uint32_t v)
{
    bus->ddr += 4u;
    mem[(addr - bus->base) >> 2] = v;
}

static uint32_t rd16(uint32_t *mem, bk_bus_t *bus, uint64_t addr)
{
    uint64_t off = addr - bus->base;
    uint32_t w = mem[off >> 2];
    bus->ddr += 2u;
    return (off & 2u) ? (w >> BITLET_HALF_SHIFT) : (w & BITLET_HALF_MASK);
}

static void wr16(uint32_t *mem, bk_bus_t *bus, uint64_t addr, uint32_t v)
{
    uint64_t off = addr - bus->base;
    uint32_t w = mem[off >> 2];
    bus->ddr += 2u;    /* byte strobes: only this half is written */
    if (off & 2u)
        w = (w & BITLET_HALF_MASK) | ((v & BITLET_HALF_MASK) << BITLET_HALF_SHIFT);
    else
        w = (w & ~(uint32_t)BITLET_HALF_MASK) | (v & BITLET_HALF_MASK);
    mem[off >> 2] = w;
}

/* Element `index` of an array of format fmt at addr (raw bits). */
static uint32_t rd_elem(uint32_t *mem, bk_bus_t *bus, uint64_t addr, uint64_t index, uint32_t fmt)
{
    if (elem_bytes(fmt) == 2u)
        return rd16(mem, bus, addr + 2u * index);
    return rd32(mem, bus, addr + 4u * index);
}

static int64_t rd64(uint32_t *mem, bk_bus_t *bus, uint64_t addr)
{
    uint64_t lo = rd32(mem, bus, addr);
    uint64_t hi = rd32(mem, bus, addr + 4u);
    return (int64_t)(lo | (hi << 32));
}

static void wr64(uint32_t *mem, bk_bus_t *bus, uint64_t addr, int64_t v)
{
    wr32(mem, bus, addr, (uint32_t)((uint64_t)v & 0xFFFFFFFFu));
    wr32(mem, bus, addr + 4u, (uint32_t)((uint64_t)v >> 32));
}

/* a * b saturating at UINT64_MAX (extents never wrap). */
static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    if (a != 0u && b > UINT64_MAX / a)
        return UINT64_MAX;
    return a * b;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return (a > UINT64_MAX - b) ? UINT64_MAX : a + b;
}

/* [addr, addr + bytes) inside the window and addr aligned to `align`. */
static int in_window(const bk_bus_t *bus, uint64_t addr, uint64_t bytes, uint32_t align)
{
    uint64_t end = bus->base + (uint64_t)bus->size;
    if (addr % align != 0u)
        return 0;
    if (addr < bus->base || addr > end)
        return 0;
    return bytes <= end - addr;
}

/* ------------------------------------------------------------------ */
/* Decode and validation                                               */
/* ------------------------------------------------------------------ */
static uint32_t lo16(uint32_t w) { return w & BITLET_HALF_MASK; }
static uint32_t hi16(uint32_t w) { return (w >> BITLET_HALF_SHIFT) & BITLET_HALF_MASK; }

static uint64_t addr64(const uint32_t *w, int lo)
{
    return (uint64_t)w[lo] | ((uint64_t)w[lo + 1] << 32);
}

static void decode(const uint32_t w[BITLET_INSN_WORDS], bk_insn_t *d)
{
    uint32_t op = w[BITLET_W_OP];
    d->op = op & BITLET_OP_MASK;
    d->wfmt = (op >> BITLET_WFMT_SHIFT) & BITLET_FMT_MASK;
    d->afmt = (op >> BITLET_AFMT_SHIFT) & BITLET_FMT_MASK;
    d->ofmt = (op >> BITLET_OFMT_SHIFT) & BITLET_FMT_MASK;
    d->flags = (op >> BITLET_FLAGS_SHIFT) & BITLET_FLAGS_MASK;
    d->prune = w[BITLET_W_PRUNE] & BITLET_PRUNE_MASK;
    d->quant = w[BITLET_W_PRUNE] >> BITLET_QUANT_SHIFT;
    d->fixbits = w[BITLET_W_MISC] & BITLET_FIXBITS_MASK;
    d->layer = w[BITLET_W_MISC] >> BITLET_LAYER_SHIFT;
    d->act = addr64(w, BITLET_W_ACT_LO);
    d->wgt = addr64(w, BITLET_W_WGT_LO);
    d->bias = addr64(w, BITLET_W_BIAS_LO);
    d->out = addr64(w, BITLET_W_OUT_LO);
    d->acc = addr64(w, BITLET_W_ACC_LO);
    d->n = w[BITLET_W_N];
    d->ih = w[BITLET_W_IH];
    d->iw = w[BITLET_W_IW];
    d->cin = w[BITLET_W_CIN];
    d->cout = w[BITLET_W_COUT];
    d->kh = w[BITLET_W_KH];
    d->kw = w[BITLET_W_KW];
    d->sh = lo16(w[BITLET_W_STRIDE]);
    d->sw = hi16(w[BITLET_W_STRIDE]);
    d->pt = lo16(w[BITLET_W_PAD_TL]);
    d->pl = hi16(w[BITLET_W_PAD_TL]);
    d->pb = lo16(w[BITLET_W_PAD_BR]);
    d->pr = hi16(w[BITLET_W_PAD_BR]);
    d->dh = lo16(w[BITLET_W_DIL]);
    d->dw = hi16(w[BITLET_W_DIL]);
    d->groups = w[BITLET_W_GROUPS];
    d->oh = lo16(w[BITLET_W_OHW]);
    d->ow = hi16(w[BITLET_W_OHW]);
    d->out_cs = w[BITLET_W_OUT_CSTRIDE];
    d->out_coff = w[BITLET_W_OUT_COFF];
    d->in_cs = w[BITLET_W_IN_CSTRIDE];
    d->in_coff = w[BITLET_W_IN_COFF];
    d->kg_begin = w[BITLET_W_KG_BEGIN];
    d->kg_end = w[BITLET_W_KG_END];
}

/* Output size along one axis (0 if the window does not fit). */
static uint32_t out_size(uint32_t in, uint32_t pad0, uint32_t pad1, uint32_t k,
                         uint32_t dil, uint32_t stride)
{
    uint64_t span = (uint64_t)in + pad0 + pad1;
    uint64_t win = (uint64_t)dil * (k - 1u) + 1u;
    if (win > span)
        return 0;
    return (uint32_t)((span - win) / stride + 1u);
}

static int dims_ok(const bk_insn_t *d)
{
    const uint32_t dims[7] = {d->n, d->ih, d->iw, d->cin, d->cout, d->kh, d->kw};
    int i;
    for (i = 0; i < 7; i++) {
        if (dims[i] < 1u || dims[i] > BITLET_MAX_DIM)
            return 0;
    }
    return 1;
}

static int formats_ok(const bk_insn_t *d, int kind)
{
    uint32_t fixed_w = d->wfmt == BITLET_FMT_FIXED;
    if (d->wfmt >= BITLET_N_FMT || d->afmt >= BITLET_N_FMT || d->ofmt >= BITLET_N_FMT)
        return 0;
    if (fixed_w != (d->afmt == BITLET_FMT_FIXED) || fixed_w != (d->ofmt == BITLET_FMT_FIXED))
        return 0;
    if (fixed_w && kind != BITLET_KIND_BITLET)
        return 0;
    if (fixed_w)
        return d->quant <= BITLET_QUANT_MAX && d->fixbits <= BITLET_FIXED_MAX_BITS;
    return d->quant == 0u && d->fixbits == 0u;
}

static int flags_ok(uint32_t flags)
{
    const uint32_t known = BITLET_FLAG_RELU | BITLET_FLAG_BIAS | BITLET_FLAG_ACCUM
                           | BITLET_FLAG_PARTIAL;
    if (flags & ~known)
        return 0;
    if ((flags & BITLET_FLAG_PARTIAL) && (flags & (BITLET_FLAG_RELU | BITLET_FLAG_BIAS)))
        return 0;
    return 1;
}

static int geometry_ok(bk_insn_t *d)
{
    uint64_t k;
    if (d->sh < 1u || d->sw < 1u || d->dh < 1u || d->dw < 1u)
        return 0;
    if (d->groups < 1u || d->cin % d->groups || d->cout % d->groups)
        return 0;
    if (d->op == BITLET_OP_GEMM) {
        if (d->ih != 1u || d->iw != 1u || d->kh != 1u || d->kw != 1u || d->groups != 1u
            || d->sh != 1u || d->sw != 1u || d->dh != 1u || d->dw != 1u
            || d->pt || d->pl || d->pb || d->pr)
            return 0;
    }
    if (d->oh < 1u || d->ow < 1u)
        return 0;
    if (d->oh != out_size(d->ih, d->pt, d->pb, d->kh, d->dh, d->sh)
        || d->ow != out_size(d->iw, d->pl, d->pr, d->kw, d->dw, d->sw))
        return 0;
    if ((uint64_t)d->in_cs < (uint64_t)d->in_coff + d->cin
        || (uint64_t)d->out_cs < (uint64_t)d->out_coff + d->cout)
        return 0;
    d->cin_g = d->cin / d->groups;
    d->cout_g = d->cout / d->groups;
    k = (uint64_t)d->kh * d->kw * d->cin_g;
    if (k > BITLET_MAX_K || (d->isfix && k > BITLET_FIXED_MAX_K))
        return 0;
    d->k = (uint32_t)k;
    d->n_kg = (d->k + BITLET_GROUP - 1u) / BITLET_GROUP;
    d->kgb = d->kg_begin;
    d->kge = d->kg_end ? d->kg_end : d->n_kg;
    return d->kgb < d->kge && d->kge <= d->n_kg;
}

static uint32_t validate(bk_insn_t *d, int kind)
{
    if (d->op != BITLET_OP_GEMM && d->op != BITLET_OP_CONV2D)
        return BITLET_STATUS_BAD_OPCODE;
    if (!formats_ok(d, kind) || !flags_ok(d->flags) || !dims_ok(d))
        return BITLET_STATUS_BAD_FIELD;
    d->isfix = d->wfmt == BITLET_FMT_FIXED;
    if (!geometry_ok(d))
        return BITLET_STATUS_BAD_FIELD;
    return BITLET_STATUS_OK;
}

/* Bytes of a partial sum / accumulator element. */
static uint32_t partial_bytes(const bk_insn_t *d)
{
    return d->isfix ? 8u : 4u;
}

static uint32_t out_elem_bytes(const bk_insn_t *d)
{
    if (d->flags & BITLET_FLAG_PARTIAL)
        return partial_bytes(d);
    return elem_bytes(d->ofmt);
}

/* Elements spanned by an NHWC tensor of `pixels` pixels, pitch cs. */
static uint64_t nhwc_span(uint64_t pixels, uint32_t cs, uint32_t coff, uint32_t c)
{
    return add_sat(mul_sat(pixels - 1u, cs), (uint64_t)coff + c);
}

static uint32_t check_extents(const bk_bus_t *bus, const bk_insn_t *d)
{
    uint64_t in_px = mul_sat(mul_sat(d->n, d->ih), d->iw);
    uint64_t out_px = mul_sat(mul_sat(d->n, d->oh), d->ow);
    uint64_t row = (uint64_t)(d->kge - d->kgb) * BITLET_GROUP;
    uint64_t out_bytes = mul_sat(nhwc_span(out_px, d->out_cs, d->out_coff, d->cout),
                                 out_elem_bytes(d));
    uint32_t ab = elem_bytes(d->afmt), wb = elem_bytes(d->wfmt);
    if (!in_window(bus, d->act, mul_sat(nhwc_span(in_px, d->in_cs, d->in_coff, d->cin), ab), ab))
        return BITLET_STATUS_BUS_ERROR;
    if (!in_window(bus, d->wgt, mul_sat(mul_sat(d->cout, row), wb), wb))
        return BITLET_STATUS_BUS_ERROR;
    if ((d->flags & BITLET_FLAG_BIAS)
        && !in_window(bus, d->bias, (uint64_t)d->cout * partial_bytes(d), WORD_BYTES))
        return BITLET_STATUS_BUS_ERROR;
    if (!in_window(bus, d->out, out_bytes, out_elem_bytes(d) == 2u ? 2u : WORD_BYTES))
        return BITLET_STATUS_BUS_ERROR;
    if ((d->flags & BITLET_FLAG_ACCUM)
        && !in_window(bus, d->acc, mul_sat(nhwc_span(out_px, d->out_cs, d->out_coff, d->cout),
                                           partial_bytes(d)), WORD_BYTES))
        return BITLET_STATUS_BUS_ERROR;
    return BITLET_STATUS_OK;
}

static uint32_t act_rows(const bk_insn_t *d)
{
    return (d->kh - 1u) * d->dh + 1u;
}

static uint32_t check_buffers(const bk_insn_t *d)
{
    uint64_t row = (uint64_t)(d->kge - d->kgb) * BITLET_GROUP;
    uint64_t words = d->isfix ? 2u : 1u;
    if ((uint64_t)BITLET_N_PE * row > BITLET_WGT_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    if (mul_sat(mul_sat(act_rows(d), d->iw), d->cin) > BITLET_ACT_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    if ((uint64_t)d->ow * BITLET_N_PE * words > BITLET_OUT_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    if ((d->flags & BITLET_FLAG_BIAS) && (uint64_t)d->cout * words > BITLET_BIAS_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    return BITLET_STATUS_OK;
}

/* ------------------------------------------------------------------ */
/* Loads into the on-chip buffers                                      */
/* ------------------------------------------------------------------ */
/* Bias into bias_buf; fixed mode: every |bias| < 2^61 else BAD_FIELD. */
static uint32_t load_bias(uint32_t *mem, bk_bus_t *bus, const bk_insn_t *d)
{
    const int64_t lim = (int64_t)1 << BITLET_FIXED_BIAS_BITS;
    uint32_t c;
    for (c = 0; c < d->cout; c++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=1024
        if (d->isfix) {
            int64_t b = rd64(mem, bus, d->bias + 8u * (uint64_t)c);
            if (b >= lim || b <= -lim)
                return BITLET_STATUS_BAD_FIELD;
            bias_buf[2u * c] = (uint32_t)((uint64_t)b & 0xFFFFFFFFu);
            bias_buf[2u * c + 1u] = (uint32_t)((uint64_t)b >> 32);
        } else {
            bias_buf[c] = rd32(mem, bus, d->bias + 4u * (uint64_t)c);
        }
    }
    return BITLET_STATUS_OK;
}

/* Weight rows [c0, c0 + cnt) into wgt_buf rows [r0, r0 + cnt). */
static void load_weights(uint32_t *mem, bk_bus_t *bus, const bk_insn_t *d, uint32_t c0,
                         uint32_t cnt, uint32_t r0)
{
    uint32_t row = (d->kge - d->kgb) * BITLET_GROUP;
    uint32_t r, j;
    for (r = 0; r < cnt; r++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=64
        for (j = 0; j < row; j++) {
#pragma HLS LOOP_TRIPCOUNT min=64 max=4096
#pragma HLS PIPELINE II=1
            uint32_t raw = rd_elem(mem, bus, d->wgt, (uint64_t)(c0 + r) * row + j, d->wfmt);
            uint32_t word = d->isfix ? (raw & FIX_WORD_MASK) : widen(raw, d->wfmt);
            /* K padding is w = +0 whatever the row holds there */
            wgt_buf[(r0 + r) * row + j] = d->kgb * BITLET_GROUP + j < d->k ? word : 0u;
        }
    }
}

/* Input row y of image n into its act_buf slot (y mod rows). */
static void load_act_row(uint32_t *mem, bk_bus_t *bus, const bk_insn_t *d, uint32_t n, uint32_t y)
{
    uint32_t slot = y % act_rows(d);
    uint32_t x, c;
    for (x = 0; x < d->iw; x++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=224
        uint64_t px = ((uint64_t)n * d->ih + y) * d->iw + x;
        uint64_t e0 = px * d->in_cs + d->in_coff;
        for (c = 0; c < d->cin; c++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=512
#pragma HLS PIPELINE II=1
            uint32_t raw = rd_elem(mem, bus, d->act, e0 + c, d->afmt);
            act_buf[((uint64_t)slot * d->iw + x) * d->cin + c] =
                d->isfix ? fixed_act_word(raw) : widen(raw, d->afmt);
        }
    }
}

/* Make input rows needed by output row oy resident (sliding line buffer:
 * a row already held from the previous output row is not read again). */
static void load_act_window(uint32_t *mem, bk_bus_t *bus, const bk_insn_t *d, uint32_t n,
                            uint32_t oy)
{
    int64_t lo = (int64_t)oy * d->sh - d->pt;
    int64_t hi = lo + act_rows(d);
    int64_t y;
    if (lo < 0)
        lo = 0;
    if (hi > (int64_t)d->ih)
        hi = d->ih;
    for (y = lo; y < hi; y++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=11
        if (y < act_rows_lo || y >= act_rows_hi)
            load_act_row(mem, bus, d, n, (uint32_t)y);
    }
    act_rows_lo = lo;
    act_rows_hi = hi;
}

void bk_gather(const bk_insn_t *d, uint32_t oy, uint32_t ox, uint32_t cg,
               uint32_t g, uint32_t a_vec[BITLET_GROUP])
{
    uint32_t j;
    for (j = 0; j < BITLET_GROUP; j++) {
#pragma HLS PIPELINE II=1
        uint32_t k = g * BITLET_GROUP + j;
        uint32_t tap, ci, kh, kw;
        int64_t y, x;
        a_vec[j] = 0u;                               /* zero padding: +0 */
        if (k >= d->k)
            continue;
        tap = k / d->cin_g;
        ci = k % d->cin_g;
        kh = tap / d->kw;
        kw = tap % d->kw;
        y = (int64_t)oy * d->sh - d->pt + (int64_t)kh * d->dh;
        x = (int64_t)ox * d->sw - d->pl + (int64_t)kw * d->dw;
        if (y < 0 || y >= (int64_t)d->ih || x < 0 || x >= (int64_t)d->iw)
            continue;                                /* padding tap: +0 */
        a_vec[j] = act_buf[(((uint64_t)y % act_rows(d)) * d->iw + (uint64_t)x) * d->cin
                           + (uint64_t)cg * d->cin_g + ci];
    }
}

uint32_t bk_weight(const bk_insn_t *d, uint32_t p, uint32_t j)
{
    return wgt_buf[(wgt_row0 + p) * (d->kge - d->kgb) * BITLET_GROUP + j];
}

/* ------------------------------------------------------------------ */
/* Batches: which output channels run together on the PE array         */
/* ------------------------------------------------------------------ */
/* Cout_g >= N_PE: N_PE consecutive channels of one channel group (the
 * reference's batches).  Cout_g < N_PE: floor(N_PE / Cout_g) whole channel
 * groups, each PE with its own channel and activation group. */
static uint32_t n_batches(const bk_insn_t *d)
{
    uint32_t per;
    if (d->cout_g >= BITLET_N_PE)
        return d->groups * ((d->cout_g + BITLET_N_PE - 1u) / BITLET_N_PE);
    per = BITLET_N_PE / d->cout_g;
    return (d->groups + per - 1u) / per;
}

static void batch_channels(const bk_insn_t *d, uint32_t b, uint32_t *c0, uint32_t *cnt)
{
    uint32_t per, bpg, j, left;
    if (d->cout_g >= BITLET_N_PE) {
        bpg = (d->cout_g + BITLET_N_PE - 1u) / BITLET_N_PE;
        j = b % bpg;
        *c0 = (b / bpg) * d->cout_g + j * BITLET_N_PE;
        left = d->cout_g - j * BITLET_N_PE;
        *cnt = left < BITLET_N_PE ? left : BITLET_N_PE;
    } else {
        per = BITLET_N_PE / d->cout_g;
        *c0 = b * per * d->cout_g;
        left = d->groups - b * per;
        *cnt = (left < per ? left : per) * d->cout_g;
    }
}

/* ------------------------------------------------------------------ */
/* The Bitlet datapath: one output pixel of one batch                  */
/* ------------------------------------------------------------------ */
static void weight_ports(const bk_insn_t *d, uint32_t p, uint32_t g, uint8_t sig[BITLET_GROUP],
                         uint8_t ex[BITLET_GROUP], uint32_t ab[BITLET_GROUP])
{
    uint32_t j;
    for (j = 0; j < BITLET_GROUP; j++) {
#pragma HLS UNROLL
        bitlet_weight_port(bk_weight(d, p, (g - d->kgb) * BITLET_GROUP + j), (int)d->isfix,
                           &sig[j], &ex[j], &ab[j]);
    }
}

/* Reference-schedule cost of one step: sub-batches of one channel group. */
static uint64_t ref_step(const bk_insn_t *d, uint32_t c0, uint32_t cnt,
                         const int32_t s[BITLET_N_PE], uint32_t lat)
{
    uint64_t cost = 0;
    int32_t m = 0;
    uint32_t p;
    for (p = 0; p < BITLET_N_PE; p++) {        /* static bound: cnt <= N_PE */
#pragma HLS UNROLL
        if (p >= cnt)
            continue;
        if (s[p] > m)
            m = s[p];
        if (p + 1u == cnt || (c0 + p + 1u) / d->cout_g != (c0 + p) / d->cout_g) {
            cost += lat + 1u + (uint32_t)m;
            m = 0;
        }
    }
    return cost;
}

static void bitlet_pixel(const bk_insn_t *d, uint32_t oy, uint32_t ox, uint32_t c0,
                         uint32_t cnt, bk_accs_t *acc, bk_prof_t *prof)
{
    static uint32_t a_vec[BITLET_GROUP];
    static uint8_t w_sig[BITLET_GROUP], w_exp[BITLET_GROUP];
    static uint32_t w_abs[BITLET_GROUP];
    uint32_t lat = d->isfix ? BITLET_LAT_FIXED : BITLET_LAT_FP32;
    uint32_t g, p;
    for (g = d->kgb; g < d->kge; g++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=64
        int32_t s[BITLET_N_PE];
        for (p = 0; p < BITLET_N_PE; p++) {  /* the N_PE PEs, each at its own pace in the row */
            bitlet_pe_result_t r;
            if (p >= cnt)
                continue;
            bk_gather(d, oy, ox, (c0 + p) / d->cout_g, g, a_vec);
            weight_ports(d, p, g, w_sig, w_exp, w_abs);
            bitlet_pe_group(w_sig, w_exp, w_abs, a_vec, (int)d->isfix, d->prune, d->quant, &r);
            if (d->isfix)
                acc->i[p] += r.acc;           /* |acc| < 2^54 per group: exact */
            else
                acc->f[p] = acc->f[p] + bk_bits_to_float(r.res);
            s[p] = r.scan;
            prof->lane[p] += 1u + (uint32_t)r.scan;    /* a group issues every S + 1 */
            prof->scan += (uint32_t)r.scan;
        }
        prof->ref += ref_step(d, c0, cnt, s, lat);
        prof->groups += cnt;
    }
}

/* ------------------------------------------------------------------ */
/* Output stage                                                        */
/* ------------------------------------------------------------------ */
static int64_t sat_add64(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static int64_t floor_shift(int64_t v, uint32_t q)
{
    if (v >= 0)
        return v >> q;
    return -(((-(v + 1)) >> q) + 1);
}

static uint32_t final_fixed(const bk_insn_t *d, int64_t sum, uint32_t co)
{
    int64_t r;
    if (d->flags & BITLET_FLAG_BIAS) {
        uint64_t b = (uint64_t)bias_buf[2u * co] | ((uint64_t)bias_buf[2u * co + 1u] << 32);
        sum = sat_add64(sum, (int64_t)b);
    }
    r = floor_shift(sum, d->quant);
    if (r > FIX_ACT_MAX)
        r = FIX_ACT_MAX;
    if (r < FIX_ACT_MIN)
        r = FIX_ACT_MIN;
    if ((d->flags & BITLET_FLAG_RELU) && r < 0)
        r = 0;
    return (uint32_t)(int32_t)r;
}

/* binary32 result -> output bits of format ofmt (bias, ReLU, NaN, RNE). */
static uint32_t final_float(const bk_insn_t *d, float v, uint32_t co)
{
    uint32_t u;
    if (d->flags & BITLET_FLAG_BIAS)
        v = v + bk_bits_to_float(bias_buf[co]);
    if ((d->flags & BITLET_FLAG_RELU) && !(v > 0.0f) && v == v)
        v = 0.0f;                                   /* x < 0 or -0 -> +0 */
    u = float_to_bits(v);
    if (is_nan_bits(u))
        u = BITLET_CANONICAL_NAN;
    if (d->ofmt == BITLET_FMT_FP16)
        return fp32_to_fp16(u);
    if (d->ofmt == BITLET_FMT_BF16)
        return fp32_to_bf16(u);
    return u;
}

static uint64_t out_index(const bk_insn_t *d, uint32_t n, uint32_t oy, uint32_t ox, uint32_t co)
{
    uint64_t px = ((uint64_t)n * d->oh + oy) * d->ow + ox;
    return px * d->out_cs + d->out_coff + co;
}

/* Start values of one pixel: ACC partials (FLAG_ACCUM) or +0. */
static void init_accs(uint32_t *mem, bk_bus_t *bus, const bk_insn_t *d, uint32_t n, uint32_t oy,
                      uint32_t ox, uint32_t c0, uint32_t cnt, bk_accs_t *acc)
{
    uint32_t p;
    for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS UNROLL
        acc->f[p] = 0.0f;
        acc->i[p] = 0;
        if (p >= cnt || !(d->flags & BITLET_FLAG_ACCUM))
            continue;
        if (d->isfix)
            acc->i[p] = rd64(mem, bus, d->acc + 8u * out_index(d, n, oy, ox, c0 + p));
        else
            acc->f[p] = bk_bits_to_float(
                rd32(mem, bus, d->acc + 4u * out_index(d, n, oy, ox, c0 + p)));
    }
}

/* Keep one pixel's sums in the out-row buffer (float bits / int64). */
static void keep_accs(const bk_insn_t *d, uint32_t ox, uint32_t cnt, const bk_accs_t *acc)
{
    uint32_t p;
    for (p = 0; p < BITLET_N_PE; p++) {
        uint32_t at = ox * BITLET_N_PE + p;
        if (p >= cnt)
            continue;
        if (d->isfix) {
            out_buf[2u * at] = (uint32_t)((uint64_t)acc->i[p] & 0xFFFFFFFFu);
            out_buf[2u * at + 1u] = (uint32_t)((uint64_t)acc->i[p] >> 32);
        } else {
            out_buf[at] = float_to_bits(acc->f[p]);
        }
    }
}

static void write_out(uint32_t *mem, bk_bus_t *bus, const bk_insn_t *d, uint32_t n, uint32_t oy,
                      uint32_t ox, uint32_t co, uint32_t at)
{
    uint64_t idx = out_index(d, n, oy, ox, co);
    int partial = (d->flags & BITLET_FLAG_PARTIAL) != 0;
    if (d->isfix) {
        int64_t s = (int64_t)((uint64_t)out_buf[2u * at] | ((uint64_t)out_buf[2u * at + 1u] << 32));
        if (partial)
            wr64(mem, bus, d->out + 8u * idx, s);
        else
            wr32(mem, bus, d->out + 4u * idx, final_fixed(d, s, co));
    } else if (partial) {
        uint32_t u = out_buf[at];
        wr32(mem, bus, d->out + 4u * idx, is_nan_bits(u) ? BITLET_CANONICAL_NAN : u);
    } else if (elem_bytes(d->ofmt) == 2u) {
        wr16(mem, bus, d->out + 2u * idx, final_float(d, bk_bits_to_float(out_buf[at]), co));
    } else {
        wr32(mem, bus, d->out + 4u * idx, final_float(d, bk_bits_to_float(out_buf[at]), co));
    }
}

static void write_row(uint32_t *mem, bk_bus_t *bus, const bk_insn_t *d, uint32_t n, uint32_t oy,
                      uint32_t c0, uint32_t cnt)
{
    uint32_t ox, p;
    for (ox = 0; ox < d->ow; ox++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=224
        for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS PIPELINE II=1
            if (p < cnt)
                write_out(mem, bus, d, n, oy, ox, c0 + p, ox * BITLET_N_PE + p);
        }
    }
}

/* ------------------------------------------------------------------ */
/* One instruction                                                     */
/* ------------------------------------------------------------------ */
static void batch_row(uint32_t *mem, bk_bus_t *bus, const bk_insn_t *d, int kind, uint32_t n,
                      uint32_t oy, uint32_t c0, uint32_t cnt, bk_prof_t *prof)
{
#pragma HLS INLINE
    bk_accs_t acc;
    uint32_t ox, p;
    uint64_t row = 0;
    for (p = 0; p < BITLET_N_PE; p++)
        prof->lane[p] = 0;
    for (ox = 0; ox < d->ow; ox++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=224
        init_accs(mem, bus, d, n, oy, ox, c0, cnt, &acc);
        if (kind == BITLET_KIND_BITLET)
            bitlet_pixel(d, oy, ox, c0, cnt, &acc, prof);
        else
            vendor_pixel(d, oy, ox, c0, cnt, &acc, prof);
        keep_accs(d, ox, cnt, &acc);
    }
    /* The PEs synchronise at the end of the out row (shared row buffer). */
    for (p = 0; p < BITLET_N_PE; p++)
        row = prof->lane[p] > row ? prof->lane[p] : row;
    prof->pe += row;
    write_row(mem, bus, d, n, oy, c0, cnt);
}

static uint32_t execute(uint32_t *mem, bk_bus_t *bus, const bk_insn_t *d, int kind, bk_prof_t *prof)
{
#pragma HLS INLINE
    uint32_t nb = n_batches(d), row = (d->kge - d->kgb) * BITLET_GROUP;
    int resident = (uint64_t)d->cout * row <= BITLET_WGT_BUF_WORDS;
    uint32_t n, oy, b, c0, cnt;
    if ((d->flags & BITLET_FLAG_BIAS) && load_bias(mem, bus, d) != BITLET_STATUS_OK)
        return BITLET_STATUS_BAD_FIELD;
    if (resident)
        load_weights(mem, bus, d, 0u, d->cout, 0u);
    for (n = 0; n < d->n; n++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=16
        act_rows_lo = act_rows_hi = -1;
        for (oy = 0; oy < d->oh; oy++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=224
            load_act_window(mem, bus, d, n, oy);
            for (b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=256
                batch_channels(d, b, &c0, &cnt);
                if (!resident)
                    load_weights(mem, bus, d, c0, cnt, 0u);
                wgt_row0 = resident ? c0 : 0u;
                batch_row(mem, bus, d, kind, n, oy, c0, cnt, prof);
            }
        }
    }
    return BITLET_STATUS_OK;
}

/* PE-array fill/drain and kernel cycles (README "Cycle model"). */
static void finish_prof(const bk_insn_t *d, int kind, bk_prof_t *prof, uint64_t ddr)
{
    uint64_t fill;
    if (kind == BITLET_KIND_BITLET)
        fill = d->isfix ? BITLET_LAT_FIXED : BITLET_LAT_FP32;
    else
        fill = BITLET_VENDOR_MUL_LAT
               + (uint64_t)BITLET_VENDOR_ADD_LAT * (3u + BITLET_VENDOR_TREE_DEPTH);
    if (prof->groups)
        prof->pe += fill;
    prof->ddr = ddr;
    prof->kernel = BITLET_INSN_OVERHEAD_CYCLES + prof->pe
                   + (ddr + BITLET_DDR_BYTES_PER_CYCLE - 1u) / BITLET_DDR_BYTES_PER_CYCLE;
}

static void write_prof(uint32_t *mem, bk_bus_t *bus, uint64_t addr, uint32_t status, uint32_t layer,
                       const bk_prof_t *p)
{
    uint32_t rec[BITLET_PROF_WORDS];
    uint32_t i;
    for (i = 0; i < BITLET_PROF_WORDS; i++)
        rec[i] = 0u;
    rec[BITLET_P_STATUS] = status;
    rec[BITLET_P_LAYER] = layer;
#define PUT64(LO, V) do { rec[LO] = (uint32_t)((V) & 0xFFFFFFFFu); \
                           rec[(LO) + 1] = (uint32_t)((V) >> 32); } while (0)
    PUT64(BITLET_P_PE_CYCLES_LO, p->pe);
    PUT64(BITLET_P_REF_CYCLES_LO, p->ref);
    PUT64(BITLET_P_KERNEL_CYCLES_LO, p->kernel);
    PUT64(BITLET_P_GROUPS_LO, p->groups);
    PUT64(BITLET_P_SCAN_LO, p->scan);
    PUT64(BITLET_P_DDR_BYTES_LO, p->ddr);
#undef PUT64
    for (i = 0; i < BITLET_PROF_WORDS; i++)
        mem[(addr - bus->base) / WORD_BYTES + i] = rec[i];
}

/* Fetch, check, run one instruction; returns its status. */
static uint32_t run_one(uint32_t *mem, bk_bus_t *bus, int kind, uint64_t insn_addr,
                        uint64_t prof_slot)
{
#pragma HLS INLINE
    uint32_t w[BITLET_INSN_WORDS];
    bk_insn_t d;
    bk_prof_t prof = {0, 0, 0, 0, 0, 0, {0}};
    uint32_t i, st;
    if (!in_window(bus, insn_addr, BITLET_INSN_BYTES, WORD_BYTES)
        || (prof_slot && !in_window(bus, prof_slot, BITLET_PROF_BYTES, WORD_BYTES)))
        return BITLET_STATUS_BUS_ERROR;
    bus->ddr = 0;
    for (i = 0; i < BITLET_INSN_WORDS; i++)
        w[i] = rd32(mem, bus, insn_addr + WORD_BYTES * i);
    decode(w, &d);
    if (d.op == BITLET_OP_NOP)
        st = BITLET_STATUS_OK;
    else if ((st = validate(&d, kind)) == BITLET_STATUS_OK
             && (st = check_extents(bus, &d)) == BITLET_STATUS_OK
             && (st = check_buffers(&d)) == BITLET_STATUS_OK)
        st = execute(mem, bus, &d, kind, &prof);
    if (st == BITLET_STATUS_OK)
        finish_prof(&d, kind, &prof, bus->ddr);
    else
        prof = (bk_prof_t){0, 0, 0, 0, 0, 0, {0}};
    if (prof_slot)
        write_prof(mem, bus, prof_slot, st, d.layer, &prof);
    return st;
}

/* Inlined into each top, where `kind` is a constant: each IP synthesises
 * only its own datapath (bitlet_pixel or vendor_pixel). */
void bk_run(int kind, uint32_t *mem, uint64_t mem_base, uint32_t mem_size,
            uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
            uint32_t *status, uint32_t *insn_done, uint32_t *id_magic,
            uint32_t *id_version, uint32_t *id_config, uint32_t *id_act_buf,
            uint32_t *id_wgt_buf, uint32_t *id_out_buf)
{
#pragma HLS INLINE
    bk_bus_t bus;
    uint32_t i, st = BITLET_STATUS_OK;
    uint32_t formats = kind == BITLET_KIND_BITLET ? BITLET_FORMATS_BITLET : BITLET_FORMATS_VENDOR;
    *id_magic = BITLET_MAGIC;
    *id_version = BITLET_ISA_VERSION;
    *id_config = ((uint32_t)BITLET_N_PE & BITLET_CFG_NPE_MASK) << BITLET_CFG_NPE_SHIFT
                 | ((uint32_t)kind & BITLET_CFG_KIND_MASK) << BITLET_CFG_KIND_SHIFT
                 | (formats & BITLET_CFG_FMT_MASK) << BITLET_CFG_FMT_SHIFT
                 | (((uint32_t)BITLET_CLOCK_MHZ / 4u) & BITLET_CFG_CLK_MASK)
                   << BITLET_CFG_CLK_SHIFT;
    *id_act_buf = BITLET_ACT_BUF_WORDS;
    *id_wgt_buf = BITLET_WGT_BUF_WORDS;
    *id_out_buf = BITLET_OUT_BUF_WORDS;
    bus.base = mem_base;
    bus.size = mem_size;
    bus.ddr = 0;
    for (i = 0; i < n_insn; i++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=256
        uint64_t slot = prof_addr ? prof_addr + (uint64_t)BITLET_PROF_BYTES * i : 0u;
        st = run_one(mem, &bus, kind, prog_addr + (uint64_t)BITLET_INSN_BYTES * i, slot);
        if (st != BITLET_STATUS_OK)
            break;
    }
    *status = st;
    *insn_done = i;
}

void bitlet_top(uint32_t *mem, uint64_t mem_base, uint32_t mem_size,
                uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
                uint32_t *status, uint32_t *insn_done,
                uint32_t *id_magic, uint32_t *id_version, uint32_t *id_config,
                uint32_t *id_act_buf, uint32_t *id_wgt_buf, uint32_t *id_out_buf)
{
#pragma HLS INTERFACE mode=m_axi port=mem offset=slave bundle=gmem depth=BITLET_MAXI_DEPTH max_read_burst_length=64 max_write_burst_length=64
#pragma HLS INTERFACE mode=s_axilite port=mem_base bundle=control
#pragma HLS INTERFACE mode=s_axilite port=mem_size bundle=control
#pragma HLS INTERFACE mode=s_axilite port=prog_addr bundle=control
#pragma HLS INTERFACE mode=s_axilite port=n_insn bundle=control
#pragma HLS INTERFACE mode=s_axilite port=prof_addr bundle=control
#pragma HLS INTERFACE mode=s_axilite port=status bundle=control
#pragma HLS INTERFACE mode=s_axilite port=insn_done bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_magic bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_version bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_config bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_act_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_wgt_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_out_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=return bundle=control
#pragma HLS INTERFACE mode=ap_ctrl_hs port=return
#pragma HLS ARRAY_PARTITION variable=wgt_buf type=cyclic factor=4 dim=1
#pragma HLS ARRAY_PARTITION variable=out_buf type=cyclic factor=4 dim=1
    bk_run(BITLET_KIND_BITLET, mem, mem_base, mem_size, prog_addr, n_insn, prof_addr,
           status, insn_done, id_magic, id_version, id_config, id_act_buf, id_wgt_buf,
           id_out_buf);
}
