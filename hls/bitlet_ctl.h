/*
 * bitlet_ctl.h -- the kernel's control, one copy: instruction decode, field
 * validation, operand extents, on-chip buffer rules, the output stage
 * (format conversions, bias / ReLU / canonical NaN / rounding, fixed-point
 * quantisation), the transfer and schedule rules of the cycle model and the
 * profile record.  Included by hls/bitlet_kernel.c, hls/vendor_kernel.c and
 * the fast emulator (emu/), so the three cannot drift.
 *
 * Every function is `static inline` over plain types (no kernel globals, no
 * pointers into device memory, no float or double: the binary32 addition of
 * the group sums and of the bias is integer logic, bk_f32_add).  Loops have
 * constant bounds (fixed-step priority encoders instead of data-dependent
 * normalisation loops) so HLS unrolls them into combinational logic.
 * Semantics: NUMERICS.md s.5/6 and hls/README.md ("Kernel architecture",
 * "Cycle model").
 */
#ifndef BITLET_CTL_H
#define BITLET_CTL_H
#include <stdint.h>
#include "bitlet_hw.h"

#define BK_WORD_BYTES      4u
#define BK_FP32_EXP_MASK   0x7F800000u
#define BK_FP32_MANT_MASK  0x007FFFFFu
#define BK_FP32_ABS_MASK   0x7FFFFFFFu
#define BK_FIX_ACT_MAX     16777215     /* 2^24 - 1 */
#define BK_FIX_ACT_MIN     (-16777216)  /* -2^24    */
#define BK_FIX_WORD_MASK   0x80FFFFFFu  /* sign | 24-bit magnitude */

/* ------------------------------------------------------------------ */
/* A decoded instruction                                                */
/* ------------------------------------------------------------------ */
typedef struct {
    uint32_t op, wfmt, afmt, ofmt, flags, prune, quant, fixbits, layer;
    uint64_t act, wgt, bias, out, acc;          /* device byte addresses */
    uint32_t n, ih, iw, cin, cout, kh, kw;
    uint32_t sh, sw, pt, pl, pb, pr, dh, dw, groups, oh, ow;
    uint32_t out_cs, out_coff, in_cs, in_coff, kg_begin, kg_end;
    /* derived by bk_validate */
    uint32_t isfix, cin_g, cout_g, k, n_kg, kgb, kge;
} bk_insn_t;

/* The counters of one instruction (profile record, hls/README.md). */
typedef struct {
    uint64_t pe, ref, kernel, groups, scan, ddr, start, end;
} bk_prof_t;

/* ------------------------------------------------------------------ */
/* Small integer helpers                                                */
/* ------------------------------------------------------------------ */
static inline uint64_t bk_mul_sat(uint64_t a, uint64_t b)
{
    if (a != 0u && b > UINT64_MAX / a)
        return UINT64_MAX;
    return a * b;
}

static inline uint64_t bk_add_sat(uint64_t a, uint64_t b)
{
    return (a > UINT64_MAX - b) ? UINT64_MAX : a + b;
}

/* a + b saturating at the int64 limits (fixed-mode sums, hls/README.md). */
static inline int64_t bk_sat_add64(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* floor(v / 2^q), q in 0..24. */
static inline int64_t bk_floor_shift(int64_t v, uint32_t q)
{
    if (v >= 0)
        return v >> q;
    return -(((-(v + 1)) >> q) + 1);
}

/* Index of the highest set bit of x (x < 2^27), or -1 if x == 0: a
 * fixed-step priority encoder (27 comparisons, unrolled). */
static inline int32_t bk_msb27(uint32_t x)
{
    int32_t pos = -1;
    int32_t i;
    for (i = 0; i < 27; i++) {
#pragma HLS UNROLL
        if ((x >> i) & 1u)
            pos = i;
    }
    return pos;
}

/* ------------------------------------------------------------------ */
/* Number formats (bits in, bits out)                                   */
/* ------------------------------------------------------------------ */
static inline int bk_is_nan(uint32_t u)
{
    return (u & BK_FP32_EXP_MASK) == BK_FP32_EXP_MASK && (u & BK_FP32_MANT_MASK) != 0u;
}

/* binary16 -> binary32, exact (subnormals normalised by a priority encoder). */
static inline uint32_t bk_fp16_to_fp32(uint32_t h)
{
    uint32_t sign = (h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu;
    uint32_t m = h & 0x3FFu;
    int32_t p;
    if (e == 0x1Fu)
        return sign | BK_FP32_EXP_MASK | (m << 13);
    if (e != 0u)
        return sign | ((e + 112u) << 23) | (m << 13);
    if (m == 0u)
        return sign;
    p = bk_msb27(m);                         /* 0..9: value m * 2^-24 */
    return sign | ((uint32_t)(103 + p) << 23) | (((m << (10 - p)) & 0x3FFu) << 13);
}

/* binary32 -> binary16, round to nearest even; NaN -> canonical. */
static inline uint32_t bk_fp32_to_fp16(uint32_t u)
{
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t e = (int32_t)((u >> 23) & 0xFFu);
    uint32_t m = u & BK_FP32_MANT_MASK;
    uint32_t sig, shift, q, rem, half;
    if (bk_is_nan(u))
        return BITLET_CANONICAL_NAN_FP16;
    if (e == 0xFF || e > 142)                /* Inf, or >= 2^16: overflow */
        return sign | 0x7C00u;
    if (e >= 113) {                          /* normal binary16 range */
        q = ((uint32_t)(e - 112) << 10) | (m >> 13);
        rem = m & 0x1FFFu;
        if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
            q++;                             /* may carry into Inf: correct */
        return sign | q;
    }
    if (e < 102)                             /* < 2^-25 (half the min subnormal) */
        return sign;
    sig = m | 0x800000u;                     /* value sig * 2^(e-150) */
    shift = (uint32_t)(126 - e);             /* to units of 2^-24: 14..24 */
    q = sig >> shift;
    rem = sig & ((1u << shift) - 1u);
    half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u)))
        q++;
    return sign | q;
}

static inline uint32_t bk_bf16_to_fp32(uint32_t h)
{
    return (h & 0xFFFFu) << 16;
}

static inline uint32_t bk_fp32_to_bf16(uint32_t u)
{
    if (bk_is_nan(u))
        return BITLET_CANONICAL_NAN_BF16;
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

/* Fixed activation (int32) -> PE word sign << 31 | bits 23..0, clamped to
 * [-2^24, 2^24 - 1]. */
static inline uint32_t bk_fixed_act_word(uint32_t raw)
{
    int32_t v = (int32_t)raw;
    if (v > BK_FIX_ACT_MAX)
        v = BK_FIX_ACT_MAX;
    if (v < BK_FIX_ACT_MIN)
        v = BK_FIX_ACT_MIN;
    return (v < 0 ? 0x80000000u : 0u) | ((uint32_t)v & BITLET_PRUNE_MASK);
}

static inline uint32_t bk_elem_bytes(uint32_t fmt)
{
    return (fmt == BITLET_FMT_FP16 || fmt == BITLET_FMT_BF16) ? 2u : 4u;
}

/* Element of a float format -> binary32 bits. */
static inline uint32_t bk_widen(uint32_t raw, uint32_t fmt)
{
    if (fmt == BITLET_FMT_FP16)
        return bk_fp16_to_fp32(raw);
    if (fmt == BITLET_FMT_BF16)
        return bk_bf16_to_fp32(raw);
    return raw;
}

/* Raw activation element -> PE word (float: binary32 bits; fixed: clamped). */
static inline uint32_t bk_act_word(uint32_t raw, uint32_t fmt)
{
    return fmt == BITLET_FMT_FIXED ? bk_fixed_act_word(raw) : bk_widen(raw, fmt);
}

/* Raw weight element -> weight word (fixed: bits 30..24 dropped). */
static inline uint32_t bk_weight_word(uint32_t raw, uint32_t fmt)
{
    return fmt == BITLET_FMT_FIXED ? (raw & BK_FIX_WORD_MASK) : bk_widen(raw, fmt);
}

/* IEEE binary32 addition a + b, round to nearest even, subnormal operands
 * and results kept (NUMERICS.md), as integer logic: align with guard,
 * round and sticky bits, add or subtract, normalise with a priority encoder,
 * round.  x + (-x) = +0; -0 + -0 = -0; Inf - Inf = NaN.  A NaN result is a
 * quiet NaN (its payload is not specified: every output canonicalises it). */
static inline uint32_t bk_f32_add(uint32_t a, uint32_t b)
{
    uint32_t ea = (a >> 23) & 0xFFu, eb = (b >> 23) & 0xFFu;
    uint32_t t, sa, sb, sign, big, small, d, sum;
    int32_t x, lz, sh;
    if (ea == 0xFFu || eb == 0xFFu) {
        if (bk_is_nan(a) || bk_is_nan(b))
            return BITLET_CANONICAL_NAN;
        if (ea == 0xFFu && eb == 0xFFu && ((a ^ b) >> 31))
            return BITLET_CANONICAL_NAN;         /* Inf - Inf */
        return ea == 0xFFu ? a : b;
    }
    if ((a & BK_FP32_ABS_MASK) < (b & BK_FP32_ABS_MASK)) {   /* |a| >= |b| */
        t = a; a = b; b = t;
        t = ea; ea = eb; eb = t;
    }
    sign = a & 0x80000000u;
    sa = (ea ? 0x800000u : 0u) | (a & BK_FP32_MANT_MASK);
    sb = (eb ? 0x800000u : 0u) | (b & BK_FP32_MANT_MASK);
    x = (int32_t)(ea ? ea : 1u);                 /* subnormals: exponent 1 */
    d = (ea ? ea : 1u) - (eb ? eb : 1u);
    big = sa << 3;                               /* 3 bits: guard, round, sticky */
    small = sb << 3;
    if (d > 26u)
        small = small != 0u;
    else if (d != 0u)
        small = (small >> d) | ((small & ((1u << d) - 1u)) != 0u);
    if (((a ^ b) >> 31) == 0u) {
        sum = big + small;
        if (sum >> 27) {                         /* carry: one right shift */
            sum = (sum >> 1) | (sum & 1u);
            x++;
        }
    } else {
        sum = big - small;
        if (sum == 0u)
            return 0u;                           /* exact cancellation: +0 */
        lz = 26 - bk_msb27(sum);                 /* left shift to normalise */
        sh = lz < x - 1 ? lz : x - 1;            /* down to the subnormal range */
        sum <<= sh;
        x -= sh;
    }
    if (x >= 0xFF)
        return sign | BK_FP32_EXP_MASK;          /* overflow: Inf */
    t = sum & 7u;
    sum >>= 3;                                   /* 24-bit significand */
    if (t > 4u || (t == 4u && (sum & 1u)))
        sum++;
    /* exponent field x - 1 plus the significand: a subnormal (x = 1, no
     * hidden bit) encodes itself, a carry out of the significand bumps the
     * exponent (up to Inf, mantissa 0) */
    return sign | (((uint32_t)(x - 1) << 23) + sum);
}

/* ------------------------------------------------------------------ */
/* Decode and validation                                                */
/* ------------------------------------------------------------------ */
static inline uint32_t bk_lo16(uint32_t w) { return w & BITLET_HALF_MASK; }
static inline uint32_t bk_hi16(uint32_t w) { return (w >> BITLET_HALF_SHIFT) & BITLET_HALF_MASK; }

static inline uint64_t bk_addr64(const uint32_t *w, int lo)
{
    return (uint64_t)w[lo] | ((uint64_t)w[lo + 1] << 32);
}

static inline void bk_decode(const uint32_t w[BITLET_INSN_WORDS], bk_insn_t *d)
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
    d->act = bk_addr64(w, BITLET_W_ACT_LO);
    d->wgt = bk_addr64(w, BITLET_W_WGT_LO);
    d->bias = bk_addr64(w, BITLET_W_BIAS_LO);
    d->out = bk_addr64(w, BITLET_W_OUT_LO);
    d->acc = bk_addr64(w, BITLET_W_ACC_LO);
    /* one field per line, alike by design: the decoded instruction mirrors the
     * header's word layout (a loop would hide the field names) */
    d->n = w[BITLET_W_N];
    d->ih = w[BITLET_W_IH];
    d->iw = w[BITLET_W_IW];
    d->cin = w[BITLET_W_CIN];
    d->cout = w[BITLET_W_COUT];
    d->kh = w[BITLET_W_KH];
    d->kw = w[BITLET_W_KW];
    d->sh = bk_lo16(w[BITLET_W_STRIDE]);
    d->sw = bk_hi16(w[BITLET_W_STRIDE]);
    d->pt = bk_lo16(w[BITLET_W_PAD_TL]);
    d->pl = bk_hi16(w[BITLET_W_PAD_TL]);
    d->pb = bk_lo16(w[BITLET_W_PAD_BR]);
    d->pr = bk_hi16(w[BITLET_W_PAD_BR]);
    d->dh = bk_lo16(w[BITLET_W_DIL]);
    d->dw = bk_hi16(w[BITLET_W_DIL]);
    d->groups = w[BITLET_W_GROUPS];
    d->oh = bk_lo16(w[BITLET_W_OHW]);
    d->ow = bk_hi16(w[BITLET_W_OHW]);
    d->out_cs = w[BITLET_W_OUT_CSTRIDE];
    d->out_coff = w[BITLET_W_OUT_COFF];
    d->in_cs = w[BITLET_W_IN_CSTRIDE];
    d->in_coff = w[BITLET_W_IN_COFF];
    d->kg_begin = w[BITLET_W_KG_BEGIN];
    d->kg_end = w[BITLET_W_KG_END];
    d->isfix = d->cin_g = d->cout_g = d->k = d->n_kg = d->kgb = d->kge = 0u;
}

/* Output size along one axis (0 if the window does not fit). */
static inline uint32_t bk_out_size(uint32_t in, uint32_t pad0, uint32_t pad1, uint32_t k,
                                   uint32_t dil, uint32_t stride)
{
    uint64_t span = (uint64_t)in + pad0 + pad1;
    uint64_t win = (uint64_t)dil * (k - 1u) + 1u;
    if (win > span)
        return 0;
    return (uint32_t)((span - win) / stride + 1u);
}

static inline int bk_dims_ok(const bk_insn_t *d)
{
    const uint32_t dims[7] = {d->n, d->ih, d->iw, d->cin, d->cout, d->kh, d->kw};
    int i;
    for (i = 0; i < 7; i++) {
        if (dims[i] < 1u || dims[i] > BITLET_MAX_DIM)
            return 0;
    }
    return 1;
}

static inline int bk_formats_ok(const bk_insn_t *d, int kind)
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

static inline int bk_flags_ok(uint32_t flags)
{
    const uint32_t known = BITLET_FLAG_RELU | BITLET_FLAG_BIAS | BITLET_FLAG_ACCUM
                           | BITLET_FLAG_PARTIAL;
    if (flags & ~known)
        return 0;
    if ((flags & BITLET_FLAG_PARTIAL) && (flags & (BITLET_FLAG_RELU | BITLET_FLAG_BIAS)))
        return 0;
    return 1;
}

static inline int bk_geometry_ok(bk_insn_t *d)
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
    if (d->oh != bk_out_size(d->ih, d->pt, d->pb, d->kh, d->dh, d->sh)
        || d->ow != bk_out_size(d->iw, d->pl, d->pr, d->kw, d->dw, d->sw))
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

/* Opcode and fields of a decoded non-NOP instruction -> STATUS_*; fills the
 * derived fields.  kind: BITLET_KIND_* (the vendor top has no fixed mode). */
static inline uint32_t bk_validate(bk_insn_t *d, int kind)
{
    if (d->op != BITLET_OP_GEMM && d->op != BITLET_OP_CONV2D)
        return BITLET_STATUS_BAD_OPCODE;
    if (!bk_formats_ok(d, kind) || !bk_flags_ok(d->flags) || !bk_dims_ok(d))
        return BITLET_STATUS_BAD_FIELD;
    d->isfix = d->wfmt == BITLET_FMT_FIXED;
    if (!bk_geometry_ok(d))
        return BITLET_STATUS_BAD_FIELD;
    return BITLET_STATUS_OK;
}

/* Bytes of a partial sum / accumulator / bias element. */
static inline uint32_t bk_partial_bytes(const bk_insn_t *d)
{
    return d->isfix ? 8u : 4u;
}

static inline uint32_t bk_out_elem_bytes(const bk_insn_t *d)
{
    if (d->flags & BITLET_FLAG_PARTIAL)
        return bk_partial_bytes(d);
    return bk_elem_bytes(d->ofmt);
}

/* Elements spanned by an NHWC tensor of `pixels` pixels, pitch cs. */
static inline uint64_t bk_nhwc_span(uint64_t pixels, uint32_t cs, uint32_t coff, uint32_t c)
{
    return bk_add_sat(bk_mul_sat(pixels - 1u, cs), (uint64_t)coff + c);
}

/* [addr, addr + bytes) inside [base, base + size) and addr aligned. */
static inline int bk_in_window(uint64_t base, uint32_t size, uint64_t addr, uint64_t bytes,
                               uint32_t align)
{
    uint64_t end = base + (uint64_t)size;
    if (addr % align != 0u)
        return 0;
    if (addr < base || addr > end)
        return 0;
    return bytes <= end - addr;
}

/* Weight row length of the K tile, in elements. */
static inline uint32_t bk_wrow(const bk_insn_t *d)
{
    return (d->kge - d->kgb) * BITLET_GROUP;
}

static inline uint32_t bk_check_extents(uint64_t base, uint32_t size, const bk_insn_t *d)
{
    uint64_t in_px = bk_mul_sat(bk_mul_sat(d->n, d->ih), d->iw);
    uint64_t out_px = bk_mul_sat(bk_mul_sat(d->n, d->oh), d->ow);
    uint64_t out_span = bk_nhwc_span(out_px, d->out_cs, d->out_coff, d->cout);
    uint32_t ab = bk_elem_bytes(d->afmt), wb = bk_elem_bytes(d->wfmt);
    uint32_t ob = bk_out_elem_bytes(d);
    if (!bk_in_window(base, size, d->act,
                      bk_mul_sat(bk_nhwc_span(in_px, d->in_cs, d->in_coff, d->cin), ab), ab))
        return BITLET_STATUS_BUS_ERROR;
    if (!bk_in_window(base, size, d->wgt, bk_mul_sat(bk_mul_sat(d->cout, bk_wrow(d)), wb), wb))
        return BITLET_STATUS_BUS_ERROR;
    if ((d->flags & BITLET_FLAG_BIAS)
        && !bk_in_window(base, size, d->bias, (uint64_t)d->cout * bk_partial_bytes(d),
                         BK_WORD_BYTES))
        return BITLET_STATUS_BUS_ERROR;
    if (!bk_in_window(base, size, d->out, bk_mul_sat(out_span, ob),
                      ob == 2u ? 2u : BK_WORD_BYTES))
        return BITLET_STATUS_BUS_ERROR;
    if ((d->flags & BITLET_FLAG_ACCUM)
        && !bk_in_window(base, size, d->acc, bk_mul_sat(out_span, bk_partial_bytes(d)),
                         BK_WORD_BYTES))
        return BITLET_STATUS_BUS_ERROR;
    return BITLET_STATUS_OK;
}

/* Input rows of the line-buffer window R = (KH-1)*dil_h + 1. */
static inline uint32_t bk_act_rows(const bk_insn_t *d)
{
    return (d->kh - 1u) * d->dh + 1u;
}

/* Words per accumulator (1 float, 2 fixed). */
static inline uint32_t bk_acc_words(const bk_insn_t *d)
{
    return d->isfix ? 2u : 1u;
}

/* The buffer rules of bitlet_hw.h -> STATUS_BUF_OVERFLOW. */
static inline uint32_t bk_check_buffers(const bk_insn_t *d)
{
    uint64_t row = bk_wrow(d);
    uint64_t words = bk_acc_words(d);
    if ((uint64_t)BITLET_N_PE * row > BITLET_WGT_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    if (bk_mul_sat(bk_mul_sat(bk_act_rows(d), d->iw), d->cin) > BITLET_ACT_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    if ((uint64_t)d->ow * BITLET_N_PE * words > BITLET_OUT_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    if ((d->flags & BITLET_FLAG_BIAS) && (uint64_t)d->cout * words > BITLET_BIAS_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    return BITLET_STATUS_OK;
}

/* Fixed mode: every |bias| < 2^61, else STATUS_BAD_FIELD. */
static inline int bk_fixed_bias_ok(int64_t b)
{
    const int64_t lim = (int64_t)1 << BITLET_FIXED_BIAS_BITS;
    return b < lim && b > -lim;
}

/* ------------------------------------------------------------------ */
/* Schedule: batches, resident weights, the overlap rule                */
/* ------------------------------------------------------------------ */
/* Batches (which output channels run together on the PE array):
 * Cout_g >= N_PE: N_PE consecutive channels of one channel group;
 * Cout_g < N_PE: floor(N_PE / Cout_g) whole channel groups, each PE with its
 * own channel and activation group. */
static inline uint32_t bk_n_batches(const bk_insn_t *d)
{
    uint32_t per;
    if (d->cout_g >= BITLET_N_PE)
        return d->groups * ((d->cout_g + BITLET_N_PE - 1u) / BITLET_N_PE);
    per = BITLET_N_PE / d->cout_g;
    return (d->groups + per - 1u) / per;
}

/* Batch b: first channel c0, cnt channels (c0 .. c0 + cnt - 1). */
static inline void bk_batch_channels(const bk_insn_t *d, uint32_t b, uint32_t *c0,
                                     uint32_t *cnt)
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

/* The channel groups of a batch: cg0 .. cg0 + ncg - 1 (one when
 * Cout_g >= N_PE, else the batch's whole channel groups). */
static inline void bk_batch_cgs(const bk_insn_t *d, uint32_t c0, uint32_t cnt, uint32_t *cg0,
                                uint32_t *ncg)
{
    *cg0 = c0 / d->cout_g;
    *ncg = d->cout_g >= BITLET_N_PE ? 1u : cnt / d->cout_g;
}

/* Weight buffer: N_PE lanes (one per PE) of WGT_BUF_WORDS / N_PE words.
 * All weight rows stay resident (loaded once per instruction, channel c in
 * lane c mod N_PE) iff ceil(COUT / N_PE) rows fit a lane; else each unit
 * loads its batch's rows (channel c0 + p in lane p). */
static inline int bk_weights_resident(const bk_insn_t *d)
{
    uint64_t rows = (d->cout + BITLET_N_PE - 1u) / BITLET_N_PE;
    return rows * bk_wrow(d) <= BITLET_WGT_BUF_WORDS / BITLET_N_PE;
}

/* Output-row slots an overlapped schedule needs: compute + store (+ the
 * ACC row being loaded, with FLAG_ACCUM). */
static inline uint32_t bk_out_slots(const bk_insn_t *d)
{
    return (d->flags & BITLET_FLAG_ACCUM) ? 3u : 2u;
}

/* Line-buffer slots (input rows) of the ring: 2R when overlapped, else R. */
static inline uint32_t bk_ring_rows(const bk_insn_t *d, int overlap)
{
    return overlap ? 2u * bk_act_rows(d) : bk_act_rows(d);
}

/* The overlap rule (hls/README.md "Cycle model"): loads of unit u+1, compute
 * of unit u and the store of unit u-1 run at once iff every buffer they
 * share has room for the extra copy:
 *   2 * R * IW * CIN                  <= ACT_BUF_WORDS
 *   resident weights, or 2 * T*64 <= WGT_BUF_WORDS / N_PE (two rows a lane)
 *   out_slots * OW * N_PE * w         <= OUT_BUF_WORDS
 * else the units run serially (load, compute, store). */
static inline int bk_overlap(const bk_insn_t *d)
{
    uint64_t act = bk_mul_sat(bk_mul_sat(2u * (uint64_t)bk_act_rows(d), d->iw), d->cin);
    uint64_t wgt = 2u * (uint64_t)bk_wrow(d);
    uint64_t out = (uint64_t)bk_out_slots(d) * d->ow * BITLET_N_PE * bk_acc_words(d);
    return act <= BITLET_ACT_BUF_WORDS
           && (bk_weights_resident(d) || wgt <= BITLET_WGT_BUF_WORDS / BITLET_N_PE)
           && out <= BITLET_OUT_BUF_WORDS;
}

/* Input rows [lo, hi) the line buffer must hold for output row oy. */
static inline void bk_window(const bk_insn_t *d, uint32_t oy, int64_t *lo, int64_t *hi)
{
    int64_t l = (int64_t)oy * d->sh - d->pt;
    int64_t h = l + bk_act_rows(d);
    *lo = l < 0 ? 0 : l;
    *hi = h > (int64_t)d->ih ? (int64_t)d->ih : h;
}

/* Ring slot of input row y of the window [lo, hi) whose row lo sits in
 * slot slot_lo of a ring of q rows (rows of a window occupy consecutive
 * slots, hls/README.md "Line buffer"). */
static inline uint32_t bk_ring_slot(int64_t y, int64_t lo, uint32_t slot_lo, uint32_t q)
{
    uint32_t s = slot_lo + (uint32_t)(y - lo);
    return s >= q ? s - q : s;
}

/* The line-buffer ring (hls/README.md "Line buffer"): q row slots, the next
 * slot written (wp), and the last non-empty window [lo, hi) of image n whose
 * row lo sits in slot slot_lo (a window's rows occupy consecutive slots). */
typedef struct {
    uint32_t q, wp;
    int64_t lo, hi;
    uint32_t slot_lo, n;
} bk_ring_t;

static inline void bk_ring_init(bk_ring_t *r, uint32_t q)
{
    r->q = q;
    r->wp = 0u;
    r->lo = r->hi = -1;
    r->slot_lo = 0u;
    r->n = 0u;
}

/* Output row oy of image n: its window [*lo, *hi) and the first row not
 * held, *first (rows [*first, *hi) are to be read, in ascending order, each
 * into slot wp followed by bk_ring_advance).  Latches the window (when not
 * empty) and the slot of its row lo; wp is left to the reads. */
static inline void bk_ring_next(const bk_insn_t *d, bk_ring_t *r, uint32_t n, uint32_t oy,
                                int64_t *lo, int64_t *hi, int64_t *first)
{
    int keep;
    bk_window(d, oy, lo, hi);
    keep = r->n == n && *lo < r->hi && *hi > *lo;   /* rows [lo, r->hi) still held */
    *first = keep ? r->hi : *lo;
    if (*hi > *lo) {
        r->slot_lo = keep ? bk_ring_slot(*lo, r->lo, r->slot_lo, r->q) : r->wp;
        r->lo = *lo;
        r->hi = *hi;
        r->n = n;
    }
}

/* One row written into slot wp: the next slot (compare and wrap). */
static inline void bk_ring_advance(bk_ring_t *r)
{
    r->wp = r->wp + 1u == r->q ? 0u : r->wp + 1u;
}

/* Gather waves of one group step (hls/README.md "Cycle model"): act_buf is
 * one array of PE words, input row y, pixel x, channel c (of the slice) at
 * word f = (slot(y) * IW + x) * CIN + c, cyclically partitioned into
 * BITLET_ACT_BANKS banks (bank f mod 64, address f / 64), one read per bank
 * and cycle.  A step gathers activation group g (elements k = 64 g + j) at
 * output pixel (oy, ox) for the ncg consecutive channel groups cg0 ..
 * cg0 + ncg - 1 of the batch (PEs of one channel group share each word:
 * broadcast).  Elements with k >= K and padding taps read nothing (the PE
 * gets +0); all others are distinct words.  Returns the largest number of
 * them in one bank (0 .. 64 * ncg): the step costs max(1 + max S, waves). */
static inline uint32_t bk_waves(const bk_insn_t *d, uint32_t oy, uint32_t ox, uint32_t g,
                                uint32_t cg0, uint32_t ncg, int64_t lo, uint32_t slot_lo,
                                uint32_t q)
{
    uint32_t count[BITLET_ACT_BANKS];
    uint32_t i, j, cg, best = 0u;
    for (i = 0; i < BITLET_ACT_BANKS; i++)
        count[i] = 0u;
    for (cg = cg0; cg < cg0 + ncg; cg++) {
        for (j = 0; j < BITLET_GROUP; j++) {
            uint32_t k = g * BITLET_GROUP + j, tap, ci, kh, kw;
            int64_t y, x;
            uint64_t f;
            if (k >= d->k)
                break;
            tap = k / d->cin_g;
            ci = k % d->cin_g;
            kh = tap / d->kw;
            kw = tap % d->kw;
            y = (int64_t)oy * d->sh - d->pt + (int64_t)kh * d->dh;
            x = (int64_t)ox * d->sw - d->pl + (int64_t)kw * d->dw;
            if (y < 0 || y >= (int64_t)d->ih || x < 0 || x >= (int64_t)d->iw)
                continue;
            f = ((uint64_t)bk_ring_slot(y, lo, slot_lo, q) * d->iw + (uint64_t)x) * d->cin
                + (uint64_t)cg * d->cin_g + ci;
            i = (uint32_t)(f % BITLET_ACT_BANKS);
            count[i]++;
            best = count[i] > best ? count[i] : best;
        }
    }
    return best;
}

/* ------------------------------------------------------------------ */
/* DDR transfers on the m_axi port (BITLET_AXI_BYTES per beat)          */
/* ------------------------------------------------------------------ */
/* Beats a contiguous run [addr, addr + bytes) touches (bytes > 0). */
static inline uint64_t bk_beats(uint64_t addr, uint64_t bytes)
{
    return (addr + bytes - 1u) / BITLET_AXI_BYTES - addr / BITLET_AXI_BYTES + 1u;
}

/* Cycles a run occupies its channel in a sequence of bursts issued back to
 * back: one per beat, but at least DDR_LATENCY / DDR_OUTSTANDING (with that
 * many bursts in flight a new burst can start only that often).  A sequence
 * (the runs of one stage) costs DDR_LATENCY once plus its runs' cycles. */
static inline uint64_t bk_run_cycles(uint64_t addr, uint64_t bytes)
{
    const uint64_t issue = BITLET_DDR_LATENCY / BITLET_DDR_OUTSTANDING;
    uint64_t beats = bk_beats(addr, bytes);
    return beats > issue ? beats : issue;
}

/* Cycles of a sequence of one run (fetch, bias, resident weights). */
static inline uint64_t bk_xfer_cycles(uint64_t addr, uint64_t bytes)
{
    return BITLET_DDR_LATENCY + bk_run_cycles(addr, bytes);
}

/* Edge beats of a write run that the run covers only in part (0, 1 or 2):
 * each is read (one 1-beat transfer), merged on chip and written whole. */
static inline uint32_t bk_partial_edges(uint64_t addr, uint64_t bytes)
{
    uint64_t end = addr + bytes;
    uint64_t first = addr / BITLET_AXI_BYTES, last = (end - 1u) / BITLET_AXI_BYTES;
    uint32_t head = (addr % BITLET_AXI_BYTES) != 0u;
    uint32_t tail = (end % BITLET_AXI_BYTES) != 0u;
    if (first == last)
        return head | tail;
    return head + tail;
}

/* ------------------------------------------------------------------ */
/* Output stage                                                         */
/* ------------------------------------------------------------------ */
/* Fixed mode: sum (+ bias, saturating) -> floor(sum / 2^quant) saturated to
 * [-2^24, 2^24 - 1], ReLU, as an int32 word. */
static inline uint32_t bk_final_fixed(const bk_insn_t *d, int64_t sum, int64_t bias)
{
    int64_t r;
    if (d->flags & BITLET_FLAG_BIAS)
        sum = bk_sat_add64(sum, bias);
    r = bk_floor_shift(sum, d->quant);
    if (r > BK_FIX_ACT_MAX)
        r = BK_FIX_ACT_MAX;
    if (r < BK_FIX_ACT_MIN)
        r = BK_FIX_ACT_MIN;
    if ((d->flags & BITLET_FLAG_RELU) && r < 0)
        r = 0;
    return (uint32_t)(int32_t)r;
}

/* Float modes: binary32 sum bits (+ bias bits) -> output bits of OFMT:
 * bias (binary32 RNE), ReLU (x < 0 or -0 -> +0, NaN stays), canonical NaN,
 * RNE to fp16 / bf16. */
static inline uint32_t bk_final_float(const bk_insn_t *d, uint32_t u, uint32_t bias)
{
    if (d->flags & BITLET_FLAG_BIAS)
        u = bk_f32_add(u, bias);
    if ((d->flags & BITLET_FLAG_RELU) && !bk_is_nan(u)
        && ((u >> 31) || (u & BK_FP32_ABS_MASK) == 0u))
        u = 0u;
    if (bk_is_nan(u))
        u = BITLET_CANONICAL_NAN;
    if (d->ofmt == BITLET_FMT_FP16)
        return bk_fp32_to_fp16(u);
    if (d->ofmt == BITLET_FMT_BF16)
        return bk_fp32_to_bf16(u);
    return u;
}

/* FLAG_PARTIAL in float modes: the raw sum, NaN canonical. */
static inline uint32_t bk_partial_float(uint32_t u)
{
    return bk_is_nan(u) ? BITLET_CANONICAL_NAN : u;
}

/* Element index of output (n, oy, ox, co) in OUT / ACC. */
static inline uint64_t bk_out_index(const bk_insn_t *d, uint32_t n, uint32_t oy, uint32_t ox,
                                    uint32_t co)
{
    uint64_t px = ((uint64_t)n * d->oh + oy) * d->ow + ox;
    return px * d->out_cs + d->out_coff + co;
}

/* ------------------------------------------------------------------ */
/* Profile record                                                       */
/* ------------------------------------------------------------------ */
static inline void bk_prof_record(uint32_t rec[BITLET_PROF_WORDS], uint32_t status,
                                  uint32_t layer, const bk_prof_t *p)
{
    uint32_t i;
    for (i = 0; i < BITLET_PROF_WORDS; i++)
        rec[i] = 0u;
    rec[BITLET_P_STATUS] = status;
    rec[BITLET_P_LAYER] = layer;
#define BK_PUT64(LO, V) do { rec[LO] = (uint32_t)((V) & 0xFFFFFFFFu); \
                             rec[(LO) + 1] = (uint32_t)((V) >> 32); } while (0)
    BK_PUT64(BITLET_P_PE_CYCLES_LO, p->pe);
    BK_PUT64(BITLET_P_REF_CYCLES_LO, p->ref);
    BK_PUT64(BITLET_P_KERNEL_CYCLES_LO, p->kernel);
    BK_PUT64(BITLET_P_GROUPS_LO, p->groups);
    BK_PUT64(BITLET_P_SCAN_LO, p->scan);
    BK_PUT64(BITLET_P_DDR_BYTES_LO, p->ddr);
    BK_PUT64(BITLET_P_START_LO, p->start);
    BK_PUT64(BITLET_P_END_LO, p->end);
#undef BK_PUT64
}

/* ID_CONFIG of a top of this kind. */
static inline uint32_t bk_id_config(int kind)
{
    uint32_t formats = kind == BITLET_KIND_BITLET ? BITLET_FORMATS_BITLET
                                                  : BITLET_FORMATS_VENDOR;
    return ((uint32_t)BITLET_N_PE & BITLET_CFG_NPE_MASK) << BITLET_CFG_NPE_SHIFT
           | ((uint32_t)kind & BITLET_CFG_KIND_MASK) << BITLET_CFG_KIND_SHIFT
           | (formats & BITLET_CFG_FMT_MASK) << BITLET_CFG_FMT_SHIFT
           | (((uint32_t)BITLET_CLOCK_MHZ / 4u) & BITLET_CFG_CLK_MASK) << BITLET_CFG_CLK_SHIFT;
}

#endif /* BITLET_CTL_H */
