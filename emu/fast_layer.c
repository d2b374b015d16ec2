/*
 * fast_layer.c -- GEMM / CONV2D layers and the instruction loop of the fast
 * engine, bit-exact with the kernel reference (hls/bitlet_kernel.c):
 * the same validation and statuses, the same results, and, when asked, the
 * same profile figures (hls/README.md "Cycle model").
 *
 * How a layer runs here:
 *   1. weights -> port format once (we, wa, wn; K padding forced to +0),
 *      fixed mode: S of every (channel, group) once (it does not depend on
 *      the activations);
 *   2. input tensor -> unpacked (exponent, signed significand) once;
 *   3. output pixels are cut into blocks (the parallel tasks); per block
 *      and channel group the patches are gathered (im2col, padding taps
 *      +0) and the kernels (fast_kern.inc) run channel-blocked tiles;
 *   4. the output stage: start from +0 or ACC, bias, ReLU, canonical NaN,
 *      16-bit rounding, partial sums.
 * Cycle accounting adds S per group (scanner) and the schedule sums; the
 * DDR bytes follow from the shapes, as the kernel's transfers do.
 */
#include <stdlib.h>
#include <string.h>

#include "fast_internal.h"

#define FIX_ACT_MAX   ((int32_t)BITLET_PRUNE_MASK)          /* 2^24 - 1 */
#define FIX_ACT_MIN   (-(int32_t)BITLET_PRUNE_MASK - 1)     /* -2^24    */
#define FIX_WORD_MASK (0x80000000u | BITLET_PRUNE_MASK)    /* sign | 24-bit magnitude */
#define FP32_EXP_MASK 0x7F800000u
#define FP32_MANT_MASK 0x007FFFFFu
#define PIXELS_PER_TASK 32               /* output pixels per parallel task */
#define TILE_WEIGHT_BYTES (192 * 1024)   /* weights of one channel block    */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the fast engine reads device memory as little-endian host memory"
#endif

/* ------------------------------------------------------------------ */
/* number formats (the kernel's conversions)                           */
/* ------------------------------------------------------------------ */

typedef union { uint32_t u; float f; } fu_t;

static float bits_f(uint32_t u) { fu_t x; x.u = u; return x.f; }
static uint32_t f_bits(float f) { fu_t x; x.f = f; return x.u; }

static int is_nan_bits(uint32_t u)
{
    return (u & FP32_EXP_MASK) == FP32_EXP_MASK && (u & FP32_MANT_MASK) != 0u;
}

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
    e = 113u;
    while ((m & 0x400u) == 0u) {
        m <<= 1;
        e--;
    }
    return sign | (e << 23) | ((m & 0x3FFu) << 13);
}

static uint32_t fp32_to_fp16(uint32_t u)
{
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t e = (int32_t)((u >> 23) & 0xFFu);
    uint32_t m = u & FP32_MANT_MASK;
    if (is_nan_bits(u))
        return BITLET_CANONICAL_NAN_FP16;
    if (e == 0xFF || e > 142)
        return sign | 0x7C00u;
    if (e >= 113) {
        uint32_t q = ((uint32_t)(e - 112) << 10) | (m >> 13);
        uint32_t rem = m & 0x1FFFu;
        if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
            q++;
        return sign | q;
    }
    if (e < 102)
        return sign;
    uint32_t sig = m | 0x800000u;
    uint32_t shift = (uint32_t)(126 - e);
    uint32_t q = sig >> shift;
    uint32_t rem = sig & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u)))
        q++;
    return sign | q;
}

static uint32_t fp32_to_bf16(uint32_t u)
{
    if (is_nan_bits(u))
        return BITLET_CANONICAL_NAN_BF16;
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

static uint32_t elem_bytes(uint32_t fmt)
{
    return (fmt == BITLET_FMT_FP16 || fmt == BITLET_FMT_BF16) ? 2u : 4u;
}

/* Raw element i of an array of format fmt (little-endian). */
static uint32_t rd_elem(const void *base, uint64_t i, uint32_t fmt)
{
    if (elem_bytes(fmt) == 2u)
        return ((const uint16_t *)base)[i];
    return ((const uint32_t *)base)[i];
}

static uint32_t widen(uint32_t raw, uint32_t fmt)
{
    if (fmt == BITLET_FMT_FP16)
        return fp16_to_fp32(raw);
    if (fmt == BITLET_FMT_BF16)
        return (raw & 0xFFFFu) << 16;
    return raw;
}

/* ------------------------------------------------------------------ */
/* validation (the kernel's rules and statuses)                        */
/* ------------------------------------------------------------------ */

typedef struct {
    bitlet_fast_layer_t L;
    uint32_t isfix, cin_g, cout_g, k, n_kg, kgb, kge, ng;
} fl_desc_t;

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

static uint32_t out_size(uint32_t in, uint32_t pad0, uint32_t pad1, uint32_t k,
                         uint32_t dil, uint32_t stride)
{
    uint64_t span = (uint64_t)in + pad0 + pad1;
    uint64_t win = (uint64_t)dil * (k - 1u) + 1u;
    if (win > span)
        return 0;
    return (uint32_t)((span - win) / stride + 1u);
}

static int formats_ok(const bitlet_fast_layer_t *L)
{
    uint32_t fixed_w = L->wfmt == BITLET_FMT_FIXED;
    if (L->wfmt >= BITLET_N_FMT || L->afmt >= BITLET_N_FMT || L->ofmt >= BITLET_N_FMT)
        return 0;
    if (fixed_w != (L->afmt == BITLET_FMT_FIXED) || fixed_w != (L->ofmt == BITLET_FMT_FIXED))
        return 0;
    if (fixed_w)
        return L->quant <= BITLET_QUANT_MAX && L->fixbits <= BITLET_FIXED_MAX_BITS;
    return L->quant == 0u && L->fixbits == 0u;
}

static int flags_ok(uint32_t flags)
{
    const uint32_t known = BITLET_FLAG_RELU | BITLET_FLAG_BIAS | BITLET_FLAG_ACCUM |
                           BITLET_FLAG_PARTIAL;
    if (flags & ~known)
        return 0;
    if ((flags & BITLET_FLAG_PARTIAL) && (flags & (BITLET_FLAG_RELU | BITLET_FLAG_BIAS)))
        return 0;
    return 1;
}

static int dims_ok(const bitlet_fast_layer_t *L)
{
    const uint32_t dims[7] = {L->n, L->ih, L->iw, L->cin, L->cout, L->kh, L->kw};
    for (int i = 0; i < 7; i++) {
        if (dims[i] < 1u || dims[i] > BITLET_MAX_DIM)
            return 0;
    }
    return 1;
}

static int geometry_ok(fl_desc_t *d)
{
    const bitlet_fast_layer_t *L = &d->L;
    if (L->sh < 1u || L->sw < 1u || L->dh < 1u || L->dw < 1u)
        return 0;
    if (L->groups < 1u || L->cin % L->groups || L->cout % L->groups)
        return 0;
    if (L->op == BITLET_OP_GEMM) {
        if (L->ih != 1u || L->iw != 1u || L->kh != 1u || L->kw != 1u || L->groups != 1u ||
            L->sh != 1u || L->sw != 1u || L->dh != 1u || L->dw != 1u || L->pt || L->pl ||
            L->pb || L->pr)
            return 0;
    }
    if (L->oh < 1u || L->ow < 1u)
        return 0;
    if (L->oh != out_size(L->ih, L->pt, L->pb, L->kh, L->dh, L->sh) ||
        L->ow != out_size(L->iw, L->pl, L->pr, L->kw, L->dw, L->sw))
        return 0;
    if ((uint64_t)L->in_cs < (uint64_t)L->in_coff + L->cin ||
        (uint64_t)L->out_cs < (uint64_t)L->out_coff + L->cout)
        return 0;
    d->cin_g = L->cin / L->groups;
    d->cout_g = L->cout / L->groups;
    uint64_t k = (uint64_t)L->kh * L->kw * d->cin_g;
    if (k > BITLET_MAX_K || (d->isfix && k > BITLET_FIXED_MAX_K))
        return 0;
    d->k = (uint32_t)k;
    d->n_kg = (d->k + BITLET_GROUP - 1u) / BITLET_GROUP;
    d->kgb = L->kg_begin;
    d->kge = L->kg_end ? L->kg_end : d->n_kg;
    if (!(d->kgb < d->kge && d->kge <= d->n_kg))
        return 0;
    d->ng = d->kge - d->kgb;
    return 1;
}

static uint32_t validate(fl_desc_t *d)
{
    const bitlet_fast_layer_t *L = &d->L;
    if (L->op != BITLET_OP_GEMM && L->op != BITLET_OP_CONV2D)
        return BITLET_STATUS_BAD_OPCODE;
    if (!formats_ok(L) || !flags_ok(L->flags) || !dims_ok(L))
        return BITLET_STATUS_BAD_FIELD;
    d->isfix = L->wfmt == BITLET_FMT_FIXED;
    if (!geometry_ok(d))
        return BITLET_STATUS_BAD_FIELD;
    return BITLET_STATUS_OK;
}

static uint32_t act_rows(const fl_desc_t *d)
{
    return (d->L.kh - 1u) * d->L.dh + 1u;
}

static uint32_t check_buffers(const fl_desc_t *d)
{
    const bitlet_fast_layer_t *L = &d->L;
    uint64_t row = (uint64_t)d->ng * BITLET_GROUP;
    uint64_t words = d->isfix ? 2u : 1u;
    if ((uint64_t)BITLET_N_PE * row > BITLET_WGT_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    if (mul_sat(mul_sat(act_rows(d), L->iw), L->cin) > BITLET_ACT_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    if ((uint64_t)L->ow * BITLET_N_PE * words > BITLET_OUT_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    if ((L->flags & BITLET_FLAG_BIAS) && (uint64_t)L->cout * words > BITLET_BIAS_BUF_WORDS)
        return BITLET_STATUS_BUF_OVERFLOW;
    return BITLET_STATUS_OK;
}

static uint32_t check_bias(const fl_desc_t *d)
{
    const int64_t lim = (int64_t)1 << BITLET_FIXED_BIAS_BITS;
    if (!d->isfix || !(d->L.flags & BITLET_FLAG_BIAS))
        return BITLET_STATUS_OK;
    const int64_t *bias = (const int64_t *)d->L.bias;
    for (uint32_t c = 0; c < d->L.cout; c++) {
        if (bias[c] >= lim || bias[c] <= -lim)
            return BITLET_STATUS_BAD_FIELD;
    }
    return BITLET_STATUS_OK;
}

static uint32_t partial_bytes(const fl_desc_t *d)
{
    return d->isfix ? 8u : 4u;
}

static uint32_t out_elem_bytes(const fl_desc_t *d)
{
    if (d->L.flags & BITLET_FLAG_PARTIAL)
        return partial_bytes(d);
    return elem_bytes(d->L.ofmt);
}

/* ------------------------------------------------------------------ */
/* the cycle model's shape-only parts                                  */
/* ------------------------------------------------------------------ */

/* Batches of output channels on the PE array (the kernel's batches). */
static uint32_t n_batches(const fl_desc_t *d)
{
    if (d->cout_g >= BITLET_N_PE)
        return d->L.groups * ((d->cout_g + BITLET_N_PE - 1u) / BITLET_N_PE);
    uint32_t per = BITLET_N_PE / d->cout_g;
    return (d->L.groups + per - 1u) / per;
}

static void batch_channels(const fl_desc_t *d, uint32_t b, uint32_t *c0, uint32_t *cnt)
{
    if (d->cout_g >= BITLET_N_PE) {
        uint32_t bpg = (d->cout_g + BITLET_N_PE - 1u) / BITLET_N_PE;
        uint32_t j = b % bpg;
        uint32_t left = d->cout_g - j * BITLET_N_PE;
        *c0 = (b / bpg) * d->cout_g + j * BITLET_N_PE;
        *cnt = left < BITLET_N_PE ? left : BITLET_N_PE;
    } else {
        uint32_t per = BITLET_N_PE / d->cout_g;
        uint32_t left = d->L.groups - b * per;
        *c0 = b * per * d->cout_g;
        *cnt = (left < per ? left : per) * d->cout_g;
    }
}

/* Bytes the kernel moves in DDR for this instruction. */
static uint64_t ddr_bytes(const fl_desc_t *d)
{
    const bitlet_fast_layer_t *L = &d->L;
    uint64_t row = (uint64_t)d->ng * BITLET_GROUP;
    uint64_t out_px = (uint64_t)L->n * L->oh * L->ow;
    uint64_t bytes = BITLET_INSN_BYTES;
    if (L->flags & BITLET_FLAG_BIAS)
        bytes += (uint64_t)L->cout * partial_bytes(d);
    if ((uint64_t)L->cout * row <= BITLET_WGT_BUF_WORDS)
        bytes += (uint64_t)L->cout * row * elem_bytes(L->wfmt);
    else
        bytes += (uint64_t)L->n * L->oh * L->cout * row * elem_bytes(L->wfmt);
    /* sliding line buffer: rows not held from the previous output row */
    uint64_t rows = 0;
    int64_t prev_lo = -1, prev_hi = -1;
    for (uint32_t oy = 0; oy < L->oh; oy++) {
        int64_t lo = (int64_t)oy * L->sh - L->pt;
        int64_t hi = lo + act_rows(d);
        if (lo < 0)
            lo = 0;
        if (hi > (int64_t)L->ih)
            hi = L->ih;
        for (int64_t y = lo; y < hi; y++) {
            if (y < prev_lo || y >= prev_hi)
                rows++;
        }
        prev_lo = lo;
        prev_hi = hi;
    }
    bytes += (uint64_t)L->n * rows * L->iw * L->cin * elem_bytes(L->afmt);
    if (L->flags & BITLET_FLAG_ACCUM)
        bytes += out_px * L->cout * partial_bytes(d);
    bytes += out_px * L->cout * out_elem_bytes(d);
    return bytes;
}

/* ------------------------------------------------------------------ */
/* prepared operands                                                   */
/* ------------------------------------------------------------------ */

typedef struct {
    fl_desc_t d;
    const fk_ops_t *ops;
    int threads;
    int want_cycles;
    int64_t stride;               /* row length of weights and patches   */
    int32_t *glen;                /* [ng]                                */
    /* weights [cout][stride] */
    int32_t *we, *wa, *wn;
    uint8_t *wnan, *wscan;        /* [cout][ng]                          */
    /* unpacked input [n][ih][iw][cin] */
    int32_t *xe, *xm;
    uint8_t *xs;                  /* Inf/NaN activation, or NULL if none */
    uint8_t *row_special;         /* [n][ih] an input row holds Inf/NaN  */
    int64_t n_px;                 /* output pixels                       */
    int64_t n_rows;               /* output rows (n, oy)                 */
    int64_t chunks_per_row;       /* tasks per output row (wide rows)    */
    int64_t rows_per_task;        /* output rows per task (narrow rows)  */
    uint32_t n_batch;             /* PE-array batches (n_batches)        */
    uint64_t *lane_sums;          /* [task][batch][N_PE] when a row has
                                     several tasks, else NULL            */
    int64_t ch_block;             /* output channels per tile            */
    int lanes;                    /* one group: outputs side by side     */
    /* per-worker scratch */
    int workers;
    void **scratch;
    /* per-worker cycle sums */
    bitlet_fast_prof_t *wprof;
} fl_job_t;

typedef struct {
    int32_t *ae, *am;             /* [PIXELS_PER_TASK][groups][stride]     */
    uint8_t *anan;                /* [PIXELS_PER_TASK][groups][ng]         */
    float *sum_f;                 /* [cout_g][PIXELS_PER_TASK] per cg      */
    int64_t *sum_i;
    uint8_t *scan;                /* [groups][PIXELS_PER_TASK][cout_g][ng] */
    uint64_t *lanes;              /* [n_batch][N_PE] lane sums of a row    */
} fl_scratch_t;

static void prep_weights_task(void *ctx, int64_t co, int worker)
{
    fl_job_t *j = (fl_job_t *)ctx;
    const fl_desc_t *d = &j->d;
    uint32_t row = d->ng * BITLET_GROUP;
    (void)worker;
    int32_t *we = j->we + co * j->stride;
    int32_t *wa = j->wa + co * j->stride;
    int32_t *wn = j->wn + co * j->stride;
    uint8_t *wnan = j->wnan + co * d->ng;
    for (int64_t e = 0; e < j->stride; e++) {
        uint64_t kk = (uint64_t)d->kgb * BITLET_GROUP + (uint64_t)e;
        uint32_t word = 0;
        if (kk < d->k) {
            uint32_t raw = rd_elem(d->L.wgt, (uint64_t)co * row + (uint64_t)e, d->L.wfmt);
            word = d->isfix ? (raw & FIX_WORD_MASK) : widen(raw, d->L.wfmt);
        }
        uint32_t e8 = (word >> 23) & 0xFFu, mant = word & FP32_MANT_MASK;
        wn[e] = -(int32_t)(word >> 31);
        if (d->isfix) {
            we[e] = 0;
            wa[e] = (int32_t)(word & d->L.prune & FK_SIG_MASK);
        } else if (e8 != 0u) {
            we[e] = (int32_t)e8;
            wa[e] = (int32_t)(0x800000u | mant);
            if (e8 == FK_EXP_SPECIAL)
                wnan[e / BITLET_GROUP] = 1;
        } else {
            we[e] = mant != 0u ? 1 : 0;
            wa[e] = (int32_t)mant;
        }
    }
    if (d->isfix && j->want_cycles) {
        uint32_t walign[FK_GROUP];
        for (uint32_t g = 0; g < d->ng; g++) {
            int32_t len = j->glen[g];
            for (int k = 0; k < FK_GROUP; k++)
                walign[k] = k < len ? (uint32_t)wa[(int64_t)g * FK_GROUP + k] : 0u;
            j->wscan[co * d->ng + g] =
                (uint8_t)(d->L.prune ? j->ops->scan64(walign, NULL) : 0);
        }
    }
}

/* n fp32 words -> unpacked exponents, signed significands and Inf/NaN
 * flags; returns 1 if any is Inf/NaN (a loop compilers vectorise). */
static int unpack_fp32_run(const uint32_t *u, int64_t n, int32_t *xe, int32_t *xm, uint8_t *xs)
{
    int any = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t w = u[i];
        uint32_t e = (w >> 23) & 0xFFu, mant = w & FP32_MANT_MASK;
        int32_t aman = (int32_t)((e != 0u ? 0x800000u : 0u) | mant);
        xe[i] = (int32_t)(e != 0u ? e : (mant != 0u));
        xm[i] = (w >> 31) ? -aman : aman;
        xs[i] = (uint8_t)(e == FK_EXP_SPECIAL);
        any |= e == FK_EXP_SPECIAL;
    }
    return any;
}

/* Unpack input rows (task = one input row y of one image). */
static void prep_act_task(void *ctx, int64_t task, int worker)
{
    fl_job_t *j = (fl_job_t *)ctx;
    const bitlet_fast_layer_t *L = &j->d.L;
    uint32_t words[1024];
    (void)worker;
    for (uint32_t x = 0; x < L->iw; x++) {
        int64_t px = task * L->iw + x;
        uint64_t e0 = (uint64_t)px * L->in_cs + L->in_coff;
        int64_t o = px * (int64_t)L->cin;
        if (j->d.isfix) {
            const int32_t *src = (const int32_t *)L->act + e0;
            for (uint32_t c = 0; c < L->cin; c++) {
                int32_t v = src[c];
                v = v > FIX_ACT_MAX ? FIX_ACT_MAX : (v < FIX_ACT_MIN ? FIX_ACT_MIN : v);
                j->xe[o + c] = 0;
                j->xm[o + c] = v;
            }
            continue;
        }
        for (uint32_t c0 = 0; c0 < L->cin; c0 += 1024) {
            uint32_t n = L->cin - c0 < 1024 ? L->cin - c0 : 1024;
            const uint32_t *u = words;
            if (L->afmt == BITLET_FMT_FP32) {
                u = (const uint32_t *)L->act + e0 + c0;
            } else {                                 /* widen 16-bit formats first */
                for (uint32_t c = 0; c < n; c++)
                    words[c] = widen(rd_elem(L->act, e0 + c0 + c, L->afmt), L->afmt);
            }
            j->row_special[task] |= (uint8_t)unpack_fp32_run(u, n, j->xe + o + c0,
                                                             j->xm + o + c0, j->xs + o + c0);
        }
    }
}

/* ------------------------------------------------------------------ */
/* a block of output pixels                                            */
/* ------------------------------------------------------------------ */

static void copy_i32(int32_t *dst, const int32_t *src, int64_t n)
{
    if (n >= 16) {
        memcpy(dst, src, (size_t)n * sizeof(int32_t));
        return;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = src[i];
}

static void zero_i32(int32_t *dst, int64_t n)
{
    if (n >= 16) {
        memset(dst, 0, (size_t)n * sizeof(int32_t));
        return;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = 0;
}

/* Patch rows of pixels [p0, p0 + R) for every channel group (im2col) into
 * ae/am [R][groups][stride] and anan [R][groups][ng]: the elements k of the
 * K tile, k = (ky * KW + kx) * Cin_g + ci, taken tap by tap (one bounds
 * check per tap and pixel, then the channel groups' runs); padding taps
 * and K padding are +0. */
static void gather(const fl_job_t *j, fl_scratch_t *s, int64_t p0, int R)
{
    const fl_desc_t *d = &j->d;
    const bitlet_fast_layer_t *L = &d->L;
    const int64_t cin_g = d->cin_g, groups = L->groups, ng = d->ng;
    const int64_t k0 = (int64_t)d->kgb * BITLET_GROUP;
    const int64_t k1 = k0 + j->stride < (int64_t)d->k ? k0 + j->stride : (int64_t)d->k;
    const int64_t tap0 = k0 / cin_g, tap1 = (k1 + cin_g - 1) / cin_g;
    /* element e of channel group cg of row r at ae[r * row + cg * plane + e * elem] */
    const int lanes = j->lanes;
    const int64_t row = lanes ? 1 : groups * j->stride;
    const int64_t plane = lanes ? PIXELS_PER_TASK : j->stride;
    const int64_t elem = lanes ? groups * PIXELS_PER_TASK : 1;
    int64_t ox = p0 % L->ow, t = p0 / L->ow;
    int64_t oy = t % L->oh, n = t / L->oh;
    if (j->xs != NULL)
        memset(s->anan, 0, (size_t)(groups * R * ng));
    for (int r = 0; r < R; r++) {
        int32_t *ae = s->ae + (int64_t)r * row;
        int32_t *am = s->am + (int64_t)r * row;
        const int64_t y0 = oy * L->sh - L->pt, x0 = ox * L->sw - L->pl;
        const int64_t img = n * L->ih;
        int64_t ky = tap0 / L->kw, kx = tap0 % L->kw;
        for (int64_t tap = tap0; tap < tap1; tap++) {
            int64_t first = tap * cin_g, c0 = 0, c1 = cin_g;
            if (first < k0)
                c0 = k0 - first;
            if (first + c1 > k1)
                c1 = k1 - first;
            int64_t e = first + c0 - k0, len = c1 - c0;
            int64_t y = y0 + ky * L->dh, x = x0 + kx * L->dw;
            int inside = y >= 0 && y < (int64_t)L->ih && x >= 0 && x < (int64_t)L->iw;
            int64_t src = inside ? ((img + y) * L->iw + x) * (int64_t)L->cin + c0 : 0;
            if (!lanes && inside) {
                for (int64_t cg = 0; cg < groups; cg++) {
                    copy_i32(ae + cg * plane + e, j->xe + src + cg * cin_g, len);
                    copy_i32(am + cg * plane + e, j->xm + src + cg * cin_g, len);
                }
            } else if (!lanes) {
                for (int64_t cg = 0; cg < groups; cg++) {
                    zero_i32(ae + cg * plane + e, len);
                    zero_i32(am + cg * plane + e, len);
                }
            } else {                              /* transposed: [e][cg][r] */
                for (int64_t i = 0; i < len; i++) {
                    int32_t *de = ae + (e + i) * elem, *dm = am + (e + i) * elem;
                    const int32_t *xe = j->xe + src + i, *xm = j->xm + src + i;
                    for (int64_t cg = 0; cg < groups; cg++) {
                        de[cg * plane] = inside ? xe[cg * cin_g] : 0;
                        dm[cg * plane] = inside ? xm[cg * cin_g] : 0;
                    }
                }
            }
            if (j->xs != NULL && inside) {
                for (int64_t cg = 0; cg < groups; cg++) {
                    uint8_t *nan_r = s->anan + ((int64_t)r * groups + cg) * ng;
                    for (int64_t i = 0; i < len; i++)
                        nan_r[(e + i) / BITLET_GROUP] |= j->xs[src + cg * cin_g + i];
                }
            }
            if (++kx == L->kw) {
                kx = 0;
                ky++;
            }
        }
        /* elements [k1 - k0, stride) (K padding) are never written: the
         * scratch was allocated zeroed */
        if (++ox == L->ow) {
            ox = 0;
            if (++oy == L->oh) {
                oy = 0;
                n++;
            }
        }
    }
}

/* Start value of output (pixel px, channel co): ACC partial or +0. */
static void start_values(const fl_job_t *j, int64_t p0, int R, uint32_t c0, uint32_t C,
                         float *sum_f, int64_t *sum_i)
{
    const fl_desc_t *d = &j->d;
    const bitlet_fast_layer_t *L = &d->L;
    for (int r = 0; r < R; r++) {
        for (uint32_t c = 0; c < C; c++) {
            int64_t at = (int64_t)r * C + c;
            uint64_t idx = (uint64_t)(p0 + r) * L->out_cs + L->out_coff + c0 + c;
            if (!(L->flags & BITLET_FLAG_ACCUM)) {
                if (d->isfix)
                    sum_i[at] = 0;
                else
                    sum_f[at] = 0.0f;
            } else if (d->isfix) {
                sum_i[at] = ((const int64_t *)L->acc)[idx];
            } else {
                sum_f[at] = bits_f(((const uint32_t *)L->acc)[idx]);
            }
        }
    }
}

static int64_t sat_add64(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static uint32_t final_fixed(const fl_desc_t *d, int64_t sum, uint32_t co)
{
    if (d->L.flags & BITLET_FLAG_BIAS)
        sum = sat_add64(sum, ((const int64_t *)d->L.bias)[co]);
    int64_t r = fk_floor_shift(sum, d->L.quant);
    if (r > FIX_ACT_MAX)
        r = FIX_ACT_MAX;
    if (r < FIX_ACT_MIN)
        r = FIX_ACT_MIN;
    if ((d->L.flags & BITLET_FLAG_RELU) && r < 0)
        r = 0;
    return (uint32_t)(int32_t)r;
}

static uint32_t final_float(const fl_desc_t *d, float v, uint32_t co)
{
    if (d->L.flags & BITLET_FLAG_BIAS)
        v = v + bits_f(((const uint32_t *)d->L.bias)[co]);
    if ((d->L.flags & BITLET_FLAG_RELU) && !(v > 0.0f) && v == v)
        v = 0.0f;
    uint32_t u = f_bits(v);
    if (is_nan_bits(u))
        u = BITLET_CANONICAL_NAN;
    if (d->L.ofmt == BITLET_FMT_FP16)
        return fp32_to_fp16(u);
    if (d->L.ofmt == BITLET_FMT_BF16)
        return fp32_to_bf16(u);
    return u;
}

static void write_outputs(const fl_job_t *j, int64_t p0, int R, uint32_t c0, uint32_t C,
                          const float *sum_f, const int64_t *sum_i)
{
    const fl_desc_t *d = &j->d;
    const bitlet_fast_layer_t *L = &d->L;
    int partial = (L->flags & BITLET_FLAG_PARTIAL) != 0;
    for (int r = 0; r < R; r++) {
        for (uint32_t c = 0; c < C; c++) {
            int64_t at = (int64_t)r * C + c;
            uint32_t co = c0 + c;
            uint64_t idx = (uint64_t)(p0 + r) * L->out_cs + L->out_coff + co;
            if (d->isfix) {
                if (partial)
                    ((int64_t *)L->out)[idx] = sum_i[at];
                else
                    ((uint32_t *)L->out)[idx] = final_fixed(d, sum_i[at], co);
            } else if (partial) {
                uint32_t u = f_bits(sum_f[at]);
                ((uint32_t *)L->out)[idx] = is_nan_bits(u) ? BITLET_CANONICAL_NAN : u;
            } else if (elem_bytes(L->ofmt) == 2u) {
                ((uint16_t *)L->out)[idx] = (uint16_t)final_float(d, sum_f[at], co);
            } else {
                ((uint32_t *)L->out)[idx] = final_float(d, sum_f[at], co);
            }
        }
    }
}

/* Schedule sums of one block (pixels of one output row) from S
 * [cg][R][cout_g][ng], the kernel's model (hls/README.md "Cycle model"):
 *   each PE lane of a batch issues a group every S + 1 cycles, the lanes
 *   synchronise at the end of an output row (pe += max over lanes);
 *   reference schedule: per pixel, batch and group, each channel group of
 *   the batch costs latency + 1 + its max S;
 * lane sums go to `lanes` [n_batch][N_PE]. */
static void block_cycles(const fl_job_t *j, const uint8_t *scan, int R, int r0, int r1,
                         bitlet_fast_prof_t *p, uint64_t *lanes)
{
    const fl_desc_t *d = &j->d;
    const uint32_t ng = d->ng, cout_g = d->cout_g;
    const uint64_t lat = d->isfix ? BITLET_LAT_FIXED : BITLET_LAT_FP32;
    const uint32_t nb = j->n_batch;
    uint64_t scan_sum = 0, ref = 0, groups = 0;
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t c0, cnt, nseg = 0;
        uint32_t seg_first[BITLET_N_PE], seg_len[BITLET_N_PE];
        int64_t seg_base[BITLET_N_PE];
        uint64_t *lane = lanes + (uint64_t)b * BITLET_N_PE;
        batch_channels(d, b, &c0, &cnt);
        for (uint32_t q = 0; q < BITLET_N_PE; q++)
            lane[q] = 0;
        /* the batch's channel groups (sub-batches of the reference
         * schedule): S of (channel co, pixel r, group g) is at
         * [((cg * R + r) * cout_g + co % cout_g) * ng + g], cg = co / cout_g */
        for (uint32_t q = 0; q < cnt; q += seg_len[nseg++]) {
            uint32_t co = c0 + q, cg = co / cout_g, k0 = co - cg * cout_g;
            seg_first[nseg] = q;
            seg_len[nseg] = cnt - q < cout_g - k0 ? cnt - q : cout_g - k0;
            seg_base[nseg] = ((int64_t)cg * R * cout_g + k0) * ng;
        }
        for (int r = r0; r < r1; r++) {
            for (uint32_t g = 0; g < ng; g++) {
                for (uint32_t sg = 0; sg < nseg; sg++) {
                    const uint8_t *sp = scan + seg_base[sg] + (int64_t)r * cout_g * ng + g;
                    uint64_t *ln = lane + seg_first[sg];
                    uint32_t m = 0;
                    for (uint32_t t = 0; t < seg_len[sg]; t++) {
                        uint32_t sv = sp[(int64_t)t * ng];
                        scan_sum += sv;
                        ln[t] += 1u + sv;
                        m = sv > m ? sv : m;
                    }
                    ref += lat + 1u + m;
                }
                groups += cnt;
            }
        }
    }
    p->scan += scan_sum;
    p->ref_cycles += ref;
    p->groups += groups;
}

/* pe += sum over batches of the slowest lane. */
static uint64_t row_pe(const uint64_t *lanes, uint32_t nb)
{
    uint64_t pe = 0;
    for (uint32_t b = 0; b < nb; b++) {
        uint64_t m = 0;
        for (uint32_t q = 0; q < BITLET_N_PE; q++)
            m = lanes[(uint64_t)b * BITLET_N_PE + q] > m ? lanes[(uint64_t)b * BITLET_N_PE + q] : m;
        pe += m;
    }
    return pe;
}

static void block_task(void *ctx, int64_t task, int worker)
{
    fl_job_t *j = (fl_job_t *)ctx;
    const fl_desc_t *d = &j->d;
    fl_scratch_t *s = (fl_scratch_t *)j->scratch[worker];
    int64_t ow = d->L.ow;
    int64_t p0;
    int R;
    if (j->rows_per_task == 1) {       /* a chunk of one output row */
        int64_t row = task / j->chunks_per_row, chunk = task % j->chunks_per_row;
        int64_t first = chunk * PIXELS_PER_TASK;
        p0 = row * ow + first;
        R = (int)(ow - first < PIXELS_PER_TASK ? ow - first : PIXELS_PER_TASK);
    } else {                           /* several whole output rows */
        int64_t row0 = task * j->rows_per_task;
        int64_t row1 = row0 + j->rows_per_task < j->n_rows ? row0 + j->rows_per_task : j->n_rows;
        p0 = row0 * ow;
        R = (int)((row1 - row0) * ow);
    }
    uint32_t cout_g = d->cout_g, ng = d->ng;
    gather(j, s, p0, R);
    for (uint32_t cg = 0; cg < d->L.groups; cg++) {
        uint32_t cbase = cg * cout_g;
        uint8_t *anan = s->anan + (int64_t)cg * ng;
        int64_t cg_off = (int64_t)cg * (j->lanes ? PIXELS_PER_TASK : j->stride);
        int32_t *ae = s->ae + cg_off;
        int32_t *am = s->am + cg_off;
        start_values(j, p0, R, cbase, cout_g, s->sum_f, s->sum_i);
        uint8_t *scan_cg = j->want_cycles ? s->scan + (int64_t)cg * R * cout_g * ng : NULL;
        /* channel blocks keep a block's weights in cache over the R rows */
        for (int64_t cb = 0; cb < cout_g; cb += j->ch_block) {
            int64_t C = cout_g - cb < j->ch_block ? cout_g - cb : j->ch_block;
            fk_tile_t t;
            int64_t wrow = (int64_t)cbase + cb;
            t.isfix = (int)d->isfix;
            t.prune = d->L.prune & FK_SIG_MASK;
            t.ng = (int)ng;
            t.glen = j->glen;
            t.C = (int)C;
            t.wstride = j->stride;
            t.we = j->we + wrow * j->stride;
            t.wa = j->wa + wrow * j->stride;
            t.wn = j->wn + wrow * j->stride;
            t.wnan = j->wnan + wrow * ng;
            t.wscan = j->wscan != NULL ? j->wscan + wrow * ng : NULL;
            t.R = R;
            t.lanes = j->lanes;
            t.astride = (int64_t)d->L.groups * (j->lanes ? PIXELS_PER_TASK : j->stride);
            t.nan_stride = (int64_t)d->L.groups * ng;
            t.ae = ae;
            t.am = am;
            t.anan = anan;
            /* sums and S are laid out [R][cout_g]: point at column cb */
            t.sum_f = s->sum_f;
            t.sum_i = s->sum_i;
            t.scan = scan_cg;
            t.col0 = (int)cb;
            t.ldc = (int)cout_g;
            j->ops->tile(&t);
        }
        write_outputs(j, p0, R, cbase, cout_g, s->sum_f, s->sum_i);
    }
    if (j->want_cycles && j->lane_sums != NULL) {   /* part of a row: keep lanes */
        uint64_t *lanes = j->lane_sums + (uint64_t)task * j->n_batch * BITLET_N_PE;
        block_cycles(j, s->scan, R, 0, R, &j->wprof[worker], lanes);
    } else if (j->want_cycles) {                     /* whole rows */
        for (int r0 = 0; r0 < R; r0 += (int)ow) {
            block_cycles(j, s->scan, R, r0, r0 + (int)ow, &j->wprof[worker], s->lanes);
            j->wprof[worker].pe_cycles += row_pe(s->lanes, j->n_batch);
        }
    }
}

/* ------------------------------------------------------------------ */
/* the layer                                                           */
/* ------------------------------------------------------------------ */

static void free_job(fl_job_t *j)
{
    fk_free(j->glen);
    fk_free(j->we);
    fk_free(j->wa);
    fk_free(j->wn);
    fk_free(j->wnan);
    fk_free(j->wscan);
    fk_free(j->xe);
    fk_free(j->xm);
    fk_free(j->xs);
    fk_free(j->row_special);
    if (j->scratch != NULL) {
        for (int w = 0; w < j->workers; w++) {
            fl_scratch_t *s = (fl_scratch_t *)j->scratch[w];
            if (s == NULL)
                continue;
            fk_free(s->ae);
            fk_free(s->am);
            fk_free(s->anan);
            fk_free(s->sum_f);
            fk_free(s->sum_i);
            fk_free(s->scan);
            fk_free(s->lanes);
            fk_free(s);
        }
        free(j->scratch);
    }
    fk_free(j->wprof);
    fk_free(j->lane_sums);
}

#define BAIL_IF_NULL(p) do { if ((p) == NULL) { free_job(&j); return -1; } } while (0)

/* Run a validated layer; returns 0, or -1 if memory ran out (nothing
 * was written to the output then). */
static int run_layer(const fl_desc_t *d, bitlet_fast_prof_t *prof, int threads)
{
    fl_job_t j;
    memset(&j, 0, sizeof(j));
    j.d = *d;
    j.ops = fk_ops_current();
    j.threads = fk_resolve_threads(threads);
    j.want_cycles = prof != NULL;
    const bitlet_fast_layer_t *L = &d->L;
    uint32_t ng = d->ng;
    /* group lengths: the real elements rounded up to FK_VEC */
    j.glen = (int32_t *)fk_alloc(sizeof(int32_t) * ng);
    BAIL_IF_NULL(j.glen);
    for (uint32_t g = 0; g < ng; g++) {
        int64_t first = ((int64_t)d->kgb + g) * BITLET_GROUP;
        int64_t real = (int64_t)d->k - first;
        if (real > BITLET_GROUP)
            real = BITLET_GROUP;
        j.glen[g] = (int32_t)((real + FK_VEC - 1) / FK_VEC * FK_VEC);
    }
    j.stride = (int64_t)(ng - 1u) * BITLET_GROUP + j.glen[ng - 1u];
    size_t wcount = (size_t)L->cout * (size_t)j.stride;
    j.we = (int32_t *)fk_alloc(wcount * sizeof(int32_t));
    j.wa = (int32_t *)fk_alloc(wcount * sizeof(int32_t));
    j.wn = (int32_t *)fk_alloc(wcount * sizeof(int32_t));
    j.wnan = (uint8_t *)fk_alloc((size_t)L->cout * ng);
    BAIL_IF_NULL(j.we);
    BAIL_IF_NULL(j.wa);
    BAIL_IF_NULL(j.wn);
    BAIL_IF_NULL(j.wnan);
    if (d->isfix && j.want_cycles) {
        j.wscan = (uint8_t *)fk_alloc((size_t)L->cout * ng);
        BAIL_IF_NULL(j.wscan);
    }
    size_t xcount = (size_t)L->n * L->ih * L->iw * L->cin;
    j.xe = (int32_t *)fk_alloc(xcount * sizeof(int32_t));
    j.xm = (int32_t *)fk_alloc(xcount * sizeof(int32_t));
    BAIL_IF_NULL(j.xe);
    BAIL_IF_NULL(j.xm);
    j.xs = (uint8_t *)fk_alloc(d->isfix ? 1 : xcount);
    j.row_special = (uint8_t *)fk_alloc((size_t)L->n * L->ih);
    BAIL_IF_NULL(j.xs);
    BAIL_IF_NULL(j.row_special);
    j.n_px = (int64_t)L->n * L->oh * L->ow;
    j.lanes = ng == 1;
    int64_t wrow_bytes = j.stride * 3 * (int64_t)sizeof(int32_t);
    j.ch_block = TILE_WEIGHT_BYTES / wrow_bytes;
    if (j.ch_block < 1)
        j.ch_block = 1;
    j.n_rows = (int64_t)L->n * L->oh;
    j.chunks_per_row = ((int64_t)L->ow + PIXELS_PER_TASK - 1) / PIXELS_PER_TASK;
    j.rows_per_task = j.chunks_per_row > 1 ? 1 : PIXELS_PER_TASK / (int64_t)L->ow;
    j.n_batch = n_batches(d);
    int64_t n_tasks = j.chunks_per_row > 1 ? j.n_rows * j.chunks_per_row
                                           : (j.n_rows + j.rows_per_task - 1) / j.rows_per_task;
    if (j.want_cycles && j.chunks_per_row > 1) {
        j.lane_sums = (uint64_t *)fk_alloc(sizeof(uint64_t) * (size_t)n_tasks * j.n_batch *
                                           BITLET_N_PE);
        BAIL_IF_NULL(j.lane_sums);
    }
    j.workers = j.threads < n_tasks ? j.threads : (int)n_tasks;
    if (j.workers < 1)
        j.workers = 1;
    j.scratch = (void **)calloc((size_t)j.workers, sizeof(void *));
    BAIL_IF_NULL(j.scratch);
    j.wprof = (bitlet_fast_prof_t *)fk_alloc(sizeof(bitlet_fast_prof_t) * (size_t)j.workers);
    BAIL_IF_NULL(j.wprof);
    for (int w = 0; w < j.workers; w++) {
        fl_scratch_t *s = (fl_scratch_t *)fk_alloc(sizeof(fl_scratch_t));
        BAIL_IF_NULL(s);
        j.scratch[w] = s;
        size_t rows = PIXELS_PER_TASK;
        size_t patches = (size_t)L->groups * rows * (size_t)j.stride;
        s->ae = (int32_t *)fk_alloc(patches * sizeof(int32_t));
        s->am = (int32_t *)fk_alloc(patches * sizeof(int32_t));
        s->anan = (uint8_t *)fk_alloc((size_t)L->groups * rows * ng);
        if (d->isfix)
            s->sum_i = (int64_t *)fk_alloc(rows * d->cout_g * sizeof(int64_t));
        else
            s->sum_f = (float *)fk_alloc(rows * d->cout_g * sizeof(float));
        BAIL_IF_NULL(s->ae);
        BAIL_IF_NULL(s->am);
        BAIL_IF_NULL(s->anan);
        BAIL_IF_NULL(d->isfix ? (void *)s->sum_i : (void *)s->sum_f);
        if (j.want_cycles) {
            s->scan = (uint8_t *)fk_alloc(rows * (size_t)L->cout * ng);
            s->lanes = (uint64_t *)fk_alloc(sizeof(uint64_t) * j.n_batch * BITLET_N_PE);
            BAIL_IF_NULL(s->scan);
            BAIL_IF_NULL(s->lanes);
        }
    }
    fk_parallel_for(j.threads, L->cout, prep_weights_task, &j);
    fk_parallel_for(j.threads, (int64_t)L->n * L->ih, prep_act_task, &j);
    if (memchr(j.row_special, 1, (size_t)L->n * L->ih) == NULL) {
        fk_free(j.xs);             /* no Inf/NaN input: gather skips the flags */
        j.xs = NULL;
    }
    fk_parallel_for(j.threads, n_tasks, block_task, &j);
    if (prof != NULL) {
        memset(prof, 0, sizeof(*prof));
        for (int w = 0; w < j.workers; w++) {
            prof->pe_cycles += j.wprof[w].pe_cycles;
            prof->ref_cycles += j.wprof[w].ref_cycles;
            prof->groups += j.wprof[w].groups;
            prof->scan += j.wprof[w].scan;
        }
        if (j.lane_sums != NULL) {     /* rows split over several tasks */
            uint64_t per = (uint64_t)j.n_batch * BITLET_N_PE;
            for (int64_t r = 0; r < j.n_rows; r++) {
                uint64_t *sum = j.lane_sums + (uint64_t)r * j.chunks_per_row * per;
                for (int64_t c = 1; c < j.chunks_per_row; c++) {
                    for (uint64_t i = 0; i < per; i++)
                        sum[i] += sum[(uint64_t)c * per + i];
                }
                prof->pe_cycles += row_pe(sum, j.n_batch);
            }
        }
        if (prof->groups)
            prof->pe_cycles += d->isfix ? BITLET_LAT_FIXED : BITLET_LAT_FP32;
        prof->ddr_bytes = ddr_bytes(d);
        prof->kernel_cycles = BITLET_INSN_OVERHEAD_CYCLES + prof->pe_cycles +
                              (prof->ddr_bytes + BITLET_DDR_BYTES_PER_CYCLE - 1u) /
                                  BITLET_DDR_BYTES_PER_CYCLE;
    }
    free_job(&j);
    return 0;
}

int bitlet_fast_layer(const bitlet_fast_layer_t *layer, bitlet_fast_prof_t *prof, int threads)
{
    fl_desc_t d;
    memset(&d, 0, sizeof(d));
    d.L = *layer;
    d.L.prune &= BITLET_PRUNE_MASK;
    uint32_t st = validate(&d);
    if (st == BITLET_STATUS_OK)
        st = check_buffers(&d);
    if (st == BITLET_STATUS_OK)
        st = check_bias(&d);
    if (st != BITLET_STATUS_OK)
        return (int)st;
    fk_tables_init();
    fk_fpenv_t env;
    fk_fpenv_enter(&env);
    int rc = run_layer(&d, prof, threads);
    fk_fpenv_leave(&env);
    return rc == 0 ? BITLET_STATUS_OK : -1;
}

/* ------------------------------------------------------------------ */
/* the instruction loop over a DDR arena                               */
/* ------------------------------------------------------------------ */

typedef struct {
    uint32_t *mem;
    uint64_t base;
    uint32_t size;
} fl_bus_t;

static int in_window(const fl_bus_t *bus, uint64_t addr, uint64_t bytes, uint32_t align)
{
    uint64_t end = bus->base + (uint64_t)bus->size;
    if (addr % align != 0u)
        return 0;
    if (addr < bus->base || addr > end)
        return 0;
    return bytes <= end - addr;
}

static uint64_t nhwc_span(uint64_t pixels, uint32_t cs, uint32_t coff, uint32_t c)
{
    return add_sat(mul_sat(pixels - 1u, cs), (uint64_t)coff + c);
}

static uint32_t check_extents(const fl_bus_t *bus, const fl_desc_t *d, uint64_t act,
                              uint64_t wgt, uint64_t bias, uint64_t out, uint64_t acc)
{
    const bitlet_fast_layer_t *L = &d->L;
    uint64_t in_px = mul_sat(mul_sat(L->n, L->ih), L->iw);
    uint64_t out_px = mul_sat(mul_sat(L->n, L->oh), L->ow);
    uint64_t row = (uint64_t)d->ng * BITLET_GROUP;
    uint64_t out_bytes = mul_sat(nhwc_span(out_px, L->out_cs, L->out_coff, L->cout),
                                 out_elem_bytes(d));
    uint32_t ab = elem_bytes(L->afmt), wb = elem_bytes(L->wfmt);
    if (!in_window(bus, act, mul_sat(nhwc_span(in_px, L->in_cs, L->in_coff, L->cin), ab), ab))
        return BITLET_STATUS_BUS_ERROR;
    if (!in_window(bus, wgt, mul_sat(mul_sat(L->cout, row), wb), wb))
        return BITLET_STATUS_BUS_ERROR;
    if ((L->flags & BITLET_FLAG_BIAS) &&
        !in_window(bus, bias, (uint64_t)L->cout * partial_bytes(d), 4u))
        return BITLET_STATUS_BUS_ERROR;
    if (!in_window(bus, out, out_bytes, out_elem_bytes(d) == 2u ? 2u : 4u))
        return BITLET_STATUS_BUS_ERROR;
    if ((L->flags & BITLET_FLAG_ACCUM) &&
        !in_window(bus, acc,
                   mul_sat(nhwc_span(out_px, L->out_cs, L->out_coff, L->cout), partial_bytes(d)),
                   4u))
        return BITLET_STATUS_BUS_ERROR;
    return BITLET_STATUS_OK;
}

static uint64_t addr64(const uint32_t *w, int lo)
{
    return (uint64_t)w[lo] | ((uint64_t)w[lo + 1] << 32);
}

static uint32_t lo16(uint32_t w) { return w & BITLET_HALF_MASK; }
static uint32_t hi16(uint32_t w) { return (w >> BITLET_HALF_SHIFT) & BITLET_HALF_MASK; }

static void decode(const uint32_t *w, bitlet_fast_layer_t *L)
{
    uint32_t op = w[BITLET_W_OP];
    memset(L, 0, sizeof(*L));
    L->op = op & BITLET_OP_MASK;
    L->wfmt = (op >> BITLET_WFMT_SHIFT) & BITLET_FMT_MASK;
    L->afmt = (op >> BITLET_AFMT_SHIFT) & BITLET_FMT_MASK;
    L->ofmt = (op >> BITLET_OFMT_SHIFT) & BITLET_FMT_MASK;
    L->flags = (op >> BITLET_FLAGS_SHIFT) & BITLET_FLAGS_MASK;
    L->prune = w[BITLET_W_PRUNE] & BITLET_PRUNE_MASK;
    L->quant = w[BITLET_W_PRUNE] >> BITLET_QUANT_SHIFT;
    L->fixbits = w[BITLET_W_MISC] & BITLET_FIXBITS_MASK;
    L->layer = w[BITLET_W_MISC] >> BITLET_LAYER_SHIFT;
    L->n = w[BITLET_W_N];
    L->ih = w[BITLET_W_IH];
    L->iw = w[BITLET_W_IW];
    L->cin = w[BITLET_W_CIN];
    L->cout = w[BITLET_W_COUT];
    L->kh = w[BITLET_W_KH];
    L->kw = w[BITLET_W_KW];
    L->sh = lo16(w[BITLET_W_STRIDE]);
    L->sw = hi16(w[BITLET_W_STRIDE]);
    L->pt = lo16(w[BITLET_W_PAD_TL]);
    L->pl = hi16(w[BITLET_W_PAD_TL]);
    L->pb = lo16(w[BITLET_W_PAD_BR]);
    L->pr = hi16(w[BITLET_W_PAD_BR]);
    L->dh = lo16(w[BITLET_W_DIL]);
    L->dw = hi16(w[BITLET_W_DIL]);
    L->groups = w[BITLET_W_GROUPS];
    L->oh = lo16(w[BITLET_W_OHW]);
    L->ow = hi16(w[BITLET_W_OHW]);
    L->out_cs = w[BITLET_W_OUT_CSTRIDE];
    L->out_coff = w[BITLET_W_OUT_COFF];
    L->in_cs = w[BITLET_W_IN_CSTRIDE];
    L->in_coff = w[BITLET_W_IN_COFF];
    L->kg_begin = w[BITLET_W_KG_BEGIN];
    L->kg_end = w[BITLET_W_KG_END];
}

static void *host_ptr(const fl_bus_t *bus, uint64_t addr)
{
    return (uint8_t *)bus->mem + (addr - bus->base);
}

static void write_prof(fl_bus_t *bus, uint64_t addr, uint32_t status, uint32_t layer,
                       const bitlet_fast_prof_t *p)
{
    uint32_t *rec = (uint32_t *)host_ptr(bus, addr);
    for (int i = 0; i < BITLET_PROF_WORDS; i++)
        rec[i] = 0u;
    rec[BITLET_P_STATUS] = status;
    rec[BITLET_P_LAYER] = layer;
#define PUT64(LO, V) do { rec[LO] = (uint32_t)((V) & 0xFFFFFFFFu); rec[(LO) + 1] = (uint32_t)((V) >> 32); } while (0)
    PUT64(BITLET_P_PE_CYCLES_LO, p->pe_cycles);
    PUT64(BITLET_P_REF_CYCLES_LO, p->ref_cycles);
    PUT64(BITLET_P_KERNEL_CYCLES_LO, p->kernel_cycles);
    PUT64(BITLET_P_GROUPS_LO, p->groups);
    PUT64(BITLET_P_SCAN_LO, p->scan);
    PUT64(BITLET_P_DDR_BYTES_LO, p->ddr_bytes);
#undef PUT64
}

static uint32_t run_one(fl_bus_t *bus, uint64_t insn_addr, uint64_t prof_slot, int want_prof,
                        int threads)
{
    bitlet_fast_prof_t prof;
    fl_desc_t d;
    uint32_t st;
    memset(&prof, 0, sizeof(prof));
    memset(&d, 0, sizeof(d));
    if (!in_window(bus, insn_addr, BITLET_INSN_BYTES, 4u) ||
        (prof_slot && !in_window(bus, prof_slot, BITLET_PROF_BYTES, 4u)))
        return BITLET_STATUS_BUS_ERROR;
    const uint32_t *w = (const uint32_t *)host_ptr(bus, insn_addr);
    decode(w, &d.L);
    uint64_t act = addr64(w, BITLET_W_ACT_LO), wgt = addr64(w, BITLET_W_WGT_LO);
    uint64_t bias = addr64(w, BITLET_W_BIAS_LO), out = addr64(w, BITLET_W_OUT_LO);
    uint64_t acc = addr64(w, BITLET_W_ACC_LO);
    if (d.L.op == BITLET_OP_NOP) {
        st = BITLET_STATUS_OK;
        prof.ddr_bytes = BITLET_INSN_BYTES;
        prof.kernel_cycles = BITLET_INSN_OVERHEAD_CYCLES +
                             (prof.ddr_bytes + BITLET_DDR_BYTES_PER_CYCLE - 1u) /
                                 BITLET_DDR_BYTES_PER_CYCLE;
    } else if ((st = validate(&d)) == BITLET_STATUS_OK &&
               (st = check_extents(bus, &d, act, wgt, bias, out, acc)) == BITLET_STATUS_OK &&
               (st = check_buffers(&d)) == BITLET_STATUS_OK) {
        d.L.act = host_ptr(bus, act);
        d.L.wgt = host_ptr(bus, wgt);
        d.L.bias = (d.L.flags & BITLET_FLAG_BIAS) ? host_ptr(bus, bias) : NULL;
        d.L.acc = (d.L.flags & BITLET_FLAG_ACCUM) ? host_ptr(bus, acc) : NULL;
        d.L.out = host_ptr(bus, out);
        st = check_bias(&d);
        if (st == BITLET_STATUS_OK) {
            int rc = run_layer(&d, (prof_slot && want_prof) ? &prof : NULL, threads);
            if (rc != 0)
                st = BITLET_STATUS_BUF_OVERFLOW;   /* host out of memory */
        }
    }
    if (st != BITLET_STATUS_OK)
        memset(&prof, 0, sizeof(prof));
    if (prof_slot)
        write_prof(bus, prof_slot, st, d.L.layer, &prof);
    return st;
}

void bitlet_fast_top(uint32_t *mem, uint64_t mem_base, uint32_t mem_size,
                     uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
                     uint32_t *status, uint32_t *insn_done,
                     uint32_t *id_magic, uint32_t *id_version, uint32_t *id_config,
                     uint32_t *id_act_buf, uint32_t *id_wgt_buf, uint32_t *id_out_buf,
                     int want_prof, int threads)
{
    fl_bus_t bus;
    uint32_t i, st = BITLET_STATUS_OK;
    *id_magic = BITLET_MAGIC;
    *id_version = BITLET_ISA_VERSION;
    *id_config = ((uint32_t)BITLET_N_PE & BITLET_CFG_NPE_MASK) << BITLET_CFG_NPE_SHIFT |
                 ((uint32_t)BITLET_KIND_BITLET & BITLET_CFG_KIND_MASK) << BITLET_CFG_KIND_SHIFT |
                 ((uint32_t)BITLET_FORMATS_BITLET & BITLET_CFG_FMT_MASK) << BITLET_CFG_FMT_SHIFT |
                 (((uint32_t)BITLET_CLOCK_MHZ / 4u) & BITLET_CFG_CLK_MASK) << BITLET_CFG_CLK_SHIFT;
    *id_act_buf = BITLET_ACT_BUF_WORDS;
    *id_wgt_buf = BITLET_WGT_BUF_WORDS;
    *id_out_buf = BITLET_OUT_BUF_WORDS;
    bus.mem = mem;
    bus.base = mem_base;
    bus.size = mem_size;
    fk_tables_init();
    fk_fpenv_t env;
    fk_fpenv_enter(&env);
    for (i = 0; i < n_insn; i++) {
        uint64_t slot = prof_addr ? prof_addr + (uint64_t)BITLET_PROF_BYTES * i : 0u;
        st = run_one(&bus, prog_addr + (uint64_t)BITLET_INSN_BYTES * i, slot, want_prof,
                     threads);
        if (st != BITLET_STATUS_OK)
            break;
    }
    fk_fpenv_leave(&env);
    *status = st;
    *insn_done = i;
}
