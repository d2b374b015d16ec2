/*
 * fast_layer.c -- GEMM / CONV2D layers and the instruction loop of the fast
 * engine, bit-exact with the kernel (hls/bitlet_kernel.c): the same
 * results and, when asked, the same profile figures.
 *
 * The kernel's control is not written here: instruction decode, field
 * validation, operand extents, buffer rules, the output stage (bias, ReLU,
 * canonical NaN, rounding, fixed-point quantisation), batches and the
 * transfer rules come from hls/bitlet_ctl.h, the one copy the kernel
 * includes too.  What is here is how the fast engine organises the work:
 *   1. weights -> port format once (we, wa, wn; K padding forced to +0),
 *      fixed mode: S of every (channel, group) once (it does not depend on
 *      the activations);
 *   2. input tensor -> unpacked (exponent, signed significand) once;
 *   3. output pixels are cut into blocks (the parallel tasks); per block
 *      and channel group the patches are gathered (im2col, padding taps
 *      +0) and the kernels (fast_kern.inc) run channel-blocked tiles;
 *   4. the output stage of bitlet_ctl.h on every output.
 * Group sums: float modes add with the host's binary32 addition (round to
 * nearest even, subnormals kept: fk_fpenv_enter), which gives the bits of
 * the kernel's integer adder bk_f32_add except the payload of a NaN sum,
 * and every output path canonicalises NaN (tests/test_fast.py checks
 * subnormal, cancelling, Inf and NaN sums); fixed mode saturates at the
 * int64 limits per group (bk_sat_add64), as the kernel does.
 * Cycle accounting (when asked): S per group (scanner), per unit the
 * compute-stage steps max(1 + max S, waves, weight reads), then fast_sched.c.
 */
#include <stdlib.h>
#include <string.h>

#include "fast_internal.h"
#include "fast_sched.h"

/* Results-only fp32 tiles four channels at a time (fast_tile4.c, AVX-512):
 * whether the selected kernels allow it, and the tile's channels it did
 * (a multiple of 4; the rest is left to the kernels' tile). */
int fk_tile4_usable(const fk_ops_t *ops);
int fk_tile4_fp32(const fk_tile_t *t);
/* 16 channels (rows ld apart) x 16 pixels of planar fp32 activations to
 * the unpacked rows (xe, xm, xs: pixel i at i * cin); 1 if one is Inf/NaN
 * (fast_tile4.c, AVX-512: when fk_tile4_usable). */
int fk_planar16_fp32(const uint32_t *src, int64_t ld, int32_t *xe, int32_t *xm, uint8_t *xs,
                     int64_t cin);

#define PIXELS_PER_TASK 32               /* output pixels per parallel task */
/* Work worth another thread (waking one costs microseconds, more on a busy
 * machine): group products of the blocks (~10 ns each results only, a few
 * times more with cycles), elements of the unpacking (~1 ns each). */
#define MIN_GROUPS_PER_THREAD 4096
#define MIN_ELEMS_PER_THREAD 65536
#define TASKS_PER_THREAD 8               /* block tasks a thread (narrow rows) */
#define MIN_TASK_PIXELS 8
#define TILE_WEIGHT_BYTES (192 * 1024)   /* weights of one channel block    */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the fast engine reads device memory as little-endian host memory"
#endif

typedef union { uint32_t u; float f; } fu_t;

static float bits_f(uint32_t u) { fu_t x; x.u = u; return x.f; }
static uint32_t f_bits(float f) { fu_t x; x.f = f; return x.u; }

/* Raw element i of a host array of format fmt (little-endian). */
static uint32_t rd_elem(const void *base, uint64_t i, uint32_t fmt)
{
    if (bk_elem_bytes(fmt) == 2u)
        return ((const uint16_t *)base)[i];
    return ((const uint32_t *)base)[i];
}

/* ------------------------------------------------------------------ */
/* a validated instruction and host views of its operands              */
/* ------------------------------------------------------------------ */

typedef struct {
    bk_insn_t b;                  /* decoded and validated (bitlet_ctl.h) */
    uint64_t insn_addr;           /* device address of its fetch          */
    const void *act, *wgt, *bias, *acc;
    void *out;
    int64_t act_t, out_t, wgt_ld; /* host layouts (bitlet_fast_buffers_t) */
    uint32_t ng;                  /* groups of the K tile                 */
} fl_desc_t;

/* Fixed mode with FLAG_BIAS: every |bias| < 2^61 (the kernel's check on
 * its bias buffer, before any output is written). */
static uint32_t check_bias(const fl_desc_t *d)
{
    if (!d->b.isfix || !(d->b.flags & BITLET_FLAG_BIAS))
        return BITLET_STATUS_OK;
    const int64_t *bias = (const int64_t *)d->bias;
    for (uint32_t c = 0; c < d->b.cout; c++) {
        if (!bk_fixed_bias_ok(bias[c]))
            return BITLET_STATUS_BAD_FIELD;
    }
    return BITLET_STATUS_OK;
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
    int64_t wpitch;               /* weight rows' distance (>= stride)    */
    int32_t *glen;                /* [ng]                                */
    /* weights [cout][wpitch] */
    int32_t *we, *wa, *wn;
    uint8_t *wnan, *wscan;        /* [cout][ng]                          */
    /* unpacked input [n][ih][iw][cin] */
    int32_t *xe, *xm;
    uint8_t *xs;                  /* Inf/NaN activation, or NULL if none */
    uint8_t *row_special;         /* [act_tasks] a task's inputs hold Inf/NaN */
    int64_t act_tasks;            /* unpack tasks (input rows or planar)  */
    int64_t n_px;                 /* output pixels                       */
    int64_t n_rows;               /* output rows (n, oy)                 */
    int64_t chunks_per_row;       /* tasks per output row (wide rows)    */
    int64_t rows_per_task;        /* output rows per task (narrow rows)  */
    int64_t ch_block;             /* output channels per tile            */
    int lanes;                    /* one group: outputs side by side     */
    int direct;                   /* patches are rows of the unpacked input */
    int tile4;                    /* tiles by fk_tile4_fp32 first         */
    int planar16;                 /* fk_planar16_fp32 may unpack          */
    /* cycle model (want_cycles) */
    fs_sched_t sched;
    uint64_t *cp;                 /* [row][chunk][batch] compute steps   */
    /* per-worker scratch */
    int workers;
    void **scratch;
    /* per-worker counts (ref, groups, scan) */
    bk_prof_t *wprof;
    void *ws;                     /* fl_ws_t: the working memory          */
} fl_job_t;

typedef struct {
    int32_t *ae, *am;             /* [PIXELS_PER_TASK][groups][stride]     */
    uint8_t *anan;                /* [PIXELS_PER_TASK][groups][ng]         */
    float *sum_f;                 /* [cout_g][PIXELS_PER_TASK] per cg      */
    int64_t *sum_i;
    uint8_t *scan;                /* [groups][PIXELS_PER_TASK][cout_g][ng] */
    uint32_t *waves;              /* waves of one output row (fast_sched)  */
} fl_scratch_t;

static void prep_weights_task(void *ctx, int64_t co, int worker)
{
    fl_job_t *j = (fl_job_t *)ctx;
    const fl_desc_t *d = &j->d;
    uint64_t row = d->wgt_ld > 0 ? (uint64_t)d->wgt_ld : (uint64_t)d->ng * BITLET_GROUP;
    (void)worker;
    int32_t *we = j->we + co * j->wpitch;
    int32_t *wa = j->wa + co * j->wpitch;
    int32_t *wn = j->wn + co * j->wpitch;
    uint8_t *wnan = j->wnan + co * d->ng;
    for (int64_t e = 0; e < j->stride; e++) {
        uint64_t kk = (uint64_t)d->b.kgb * BITLET_GROUP + (uint64_t)e;
        uint32_t word = 0;
        if (kk < d->b.k) {
            uint32_t raw = rd_elem(d->wgt, (uint64_t)co * row + (uint64_t)e, d->b.wfmt);
            word = bk_weight_word(raw, d->b.wfmt);
        }
        uint32_t e8 = (word >> 23) & 0xFFu, mant = word & BK_FP32_MANT_MASK;
        wn[e] = -(int32_t)(word >> 31);
        if (d->b.isfix) {
            we[e] = 0;
            wa[e] = (int32_t)(word & d->b.prune & FK_SIG_MASK);
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
    if (d->b.isfix && j->want_cycles) {
        uint32_t walign[FK_GROUP];
        for (uint32_t g = 0; g < d->ng; g++) {
            int32_t len = j->glen[g];
            for (int k = 0; k < FK_GROUP; k++)
                walign[k] = k < len ? (uint32_t)wa[(int64_t)g * FK_GROUP + k] : 0u;
            j->wscan[co * d->ng + g] =
                (uint8_t)(d->b.prune ? j->ops->scan64(walign, NULL) : 0);
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
        uint32_t e = (w >> 23) & 0xFFu, mant = w & BK_FP32_MANT_MASK;
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
    const fl_desc_t *d = &j->d;
    const bk_insn_t *L = &d->b;
    uint32_t words[1024];
    (void)worker;
    for (uint32_t x = 0; x < L->iw; x++) {
        int64_t px = task * L->iw + x;
        uint64_t e0 = (uint64_t)px * L->in_cs + L->in_coff;
        int64_t o = px * (int64_t)L->cin;
        if (j->d.b.isfix) {
            const int32_t *src = (const int32_t *)d->act + e0;
            for (uint32_t c = 0; c < L->cin; c++) {
                j->xe[o + c] = 0;
                j->xm[o + c] = fk_fixed_act(bk_fixed_act_word((uint32_t)src[c]));
            }
            continue;
        }
        for (uint32_t c0 = 0; c0 < L->cin; c0 += 1024) {
            uint32_t n = L->cin - c0 < 1024 ? L->cin - c0 : 1024;
            const uint32_t *u = words;
            if (L->afmt == BITLET_FMT_FP32) {
                u = (const uint32_t *)d->act + e0 + c0;
            } else {                                 /* widen 16-bit formats first */
                for (uint32_t c = 0; c < n; c++)
                    words[c] = bk_widen(rd_elem(d->act, e0 + c0 + c, L->afmt), L->afmt);
            }
            j->row_special[task] |= (uint8_t)unpack_fp32_run(u, n, j->xe + o + c0,
                                                             j->xm + o + c0, j->xs + o + c0);
        }
    }
}

/* Unpack planar activations (act_t > 0; task = PLANAR_PX input pixels):
 * each channel's run of pixels is contiguous on the host, unpacked as a
 * run and scattered to the pixels' rows. */
#define PLANAR_PX 64

static int64_t planar_tasks(const fl_desc_t *d)
{
    int64_t px = (int64_t)d->b.n * d->b.ih * d->b.iw;
    return (px + PLANAR_PX - 1) / PLANAR_PX;
}

static void prep_act_planar_task(void *ctx, int64_t task, int worker)
{
    enum { CB = 16 };             /* channels per block: one 64-byte line per pixel */
    fl_job_t *j = (fl_job_t *)ctx;
    const fl_desc_t *d = &j->d;
    const bk_insn_t *L = &d->b;
    const int64_t cin = L->cin;
    const int64_t p0 = task * PLANAR_PX, px = (int64_t)L->n * L->ih * L->iw;
    const int n = (int)(px - p0 < PLANAR_PX ? px - p0 : PLANAR_PX);
    uint32_t words[PLANAR_PX];
    int32_t e[CB][PLANAR_PX], m[CB][PLANAR_PX];
    uint8_t s[CB][PLANAR_PX], special = 0;
    (void)worker;
    /* channel blocks: unpack CB channel runs, then write each pixel's CB
     * channels as one run (rows of cin elements apart: writing them one
     * channel at a time would thrash the cache sets when cin * 4 is a
     * multiple of 4 KiB) */
    const int simd16 = j->planar16 && !L->isfix && L->afmt == BITLET_FMT_FP32;
    for (int64_t c0 = 0; c0 < cin; c0 += CB) {
        const int nc = (int)(cin - c0 < CB ? cin - c0 : CB);
        int lo = 0;                           /* pixels [lo, n) by the C below */
        if (simd16 && nc == CB) {
            const uint32_t *src = (const uint32_t *)d->act
                                  + (uint64_t)(L->in_coff + c0) * (uint64_t)d->act_t;
            for (; lo + 16 <= n; lo += 16) {
                int64_t o = (p0 + lo) * cin + c0;
                special |= (uint8_t)fk_planar16_fp32(src + p0 + lo, d->act_t, j->xe + o,
                                                     j->xm + o, j->xs + o, cin);
            }
            if (lo == n)
                continue;
        }
        const int m_n = n - lo;
        for (int c = 0; c < nc; c++) {
            uint64_t at = (uint64_t)(L->in_coff + c0 + c) * (uint64_t)d->act_t
                          + (uint64_t)(p0 + lo);
            if (L->isfix) {
                const int32_t *src = (const int32_t *)d->act + at;
                for (int i = 0; i < m_n; i++)
                    m[c][i] = fk_fixed_act(bk_fixed_act_word((uint32_t)src[i]));
                continue;
            }
            const uint32_t *u = words;
            if (L->afmt == BITLET_FMT_FP32) {
                u = (const uint32_t *)d->act + at;
            } else {                                 /* widen 16-bit formats first */
                for (int i = 0; i < m_n; i++)
                    words[i] = bk_widen(rd_elem(d->act, at + (uint64_t)i, L->afmt), L->afmt);
            }
            special |= (uint8_t)unpack_fp32_run(u, m_n, e[c], m[c], s[c]);
        }
        for (int i = 0; i < m_n; i++) {
            int64_t o = (p0 + lo + i) * cin + c0;
            int32_t *xe = j->xe + o, *xm = j->xm + o;
            if (L->isfix) {
                for (int c = 0; c < nc; c++) {
                    xe[c] = 0;
                    xm[c] = m[c][i];
                }
                continue;
            }
            uint8_t *xs = j->xs + o;
            for (int c = 0; c < nc; c++) {
                xe[c] = e[c][i];
                xm[c] = m[c][i];
                xs[c] = s[c][i];
            }
        }
    }
    j->row_special[task] = special;
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

/* The K tile's taps: elements [k0, k1) of every patch, tap t covering
 * elements t * Cin_g + [c0, c1) of it. */
typedef struct {
    int64_t k0, k1, tap0, tap1;
} fl_taps_t;

static fl_taps_t tile_taps(const fl_job_t *j)
{
    const bk_insn_t *L = &j->d.b;
    fl_taps_t t;
    t.k0 = (int64_t)L->kgb * BITLET_GROUP;
    t.k1 = t.k0 + j->stride < (int64_t)L->k ? t.k0 + j->stride : (int64_t)L->k;
    t.tap0 = t.k0 / L->cin_g;
    t.tap1 = (t.k1 + L->cin_g - 1) / L->cin_g;
    return t;
}

/* Channels [*c0, *c1) of tap `tap` inside the K tile; returns the
 * element of the patch where they start (relative to k0). */
static int64_t tap_run(const fl_taps_t *k, int64_t cin_g, int64_t tap, int64_t *c0, int64_t *c1)
{
    int64_t first = tap * cin_g;
    *c0 = first < k->k0 ? k->k0 - first : 0;
    *c1 = first + cin_g > k->k1 ? k->k1 - first : cin_g;
    return first + *c0 - k->k0;
}

/* Patch rows of pixels [p0, p0 + R) for every channel group (im2col) into
 * ae/am [R][groups][stride] and anan [R][groups][ng]: the elements k of the
 * K tile, k = (ky * KW + kx) * Cin_g + ci, taken tap by tap (one bounds
 * check per tap and pixel, then the channel groups' runs); padding taps
 * and K padding are +0.  One-group layers (lanes): gather_lanes. */
static void gather(const fl_job_t *j, fl_scratch_t *s, int64_t p0, int R)
{
    const fl_desc_t *d = &j->d;
    const bk_insn_t *L = &d->b;
    const int64_t cin_g = d->b.cin_g, groups = L->groups, ng = d->ng;
    const fl_taps_t k = tile_taps(j);
    /* element e of channel group cg of row r at ae[r * row + cg * plane + e] */
    const int64_t row = groups * j->stride, plane = j->stride;
    int64_t ox = p0 % L->ow, t = p0 / L->ow;
    int64_t oy = t % L->oh, n = t / L->oh;
    if (j->xs != NULL)
        memset(s->anan, 0, (size_t)(groups * R * ng));
    for (int r = 0; r < R; r++) {
        int32_t *ae = s->ae + (int64_t)r * row;
        int32_t *am = s->am + (int64_t)r * row;
        const int64_t y0 = oy * L->sh - L->pt, x0 = ox * L->sw - L->pl;
        const int64_t img = n * L->ih;
        int64_t ky = k.tap0 / L->kw, kx = k.tap0 % L->kw;
        for (int64_t tap = k.tap0; tap < k.tap1; tap++) {
            int64_t c0, c1;
            int64_t e = tap_run(&k, cin_g, tap, &c0, &c1), len = c1 - c0;
            int64_t y = y0 + ky * L->dh, x = x0 + kx * L->dw;
            int inside = y >= 0 && y < (int64_t)L->ih && x >= 0 && x < (int64_t)L->iw;
            int64_t src = inside ? ((img + y) * L->iw + x) * (int64_t)L->cin + c0 : 0;
            for (int64_t cg = 0; cg < groups; cg++) {
                if (inside) {
                    copy_i32(ae + cg * plane + e, j->xe + src + cg * cin_g, len);
                    copy_i32(am + cg * plane + e, j->xm + src + cg * cin_g, len);
                } else {
                    zero_i32(ae + cg * plane + e, len);
                    zero_i32(am + cg * plane + e, len);
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

/* gather for one-group layers (K <= 64, e.g. depthwise): the patches
 * transposed, element e of channel group cg of row r at
 * ae[e * groups * PIXELS_PER_TASK + cg * PIXELS_PER_TASK + r] (the rows of
 * a tile side by side), written row-contiguously tap by tap: each tap's
 * source of every row first, then each element and channel group across
 * the rows. */
static void gather_lanes(const fl_job_t *j, fl_scratch_t *s, int64_t p0, int R)
{
    const bk_insn_t *L = &j->d.b;
    const int64_t cin_g = L->cin_g, groups = L->groups, ng = j->d.ng;
    const int64_t plane = PIXELS_PER_TASK, elem = groups * PIXELS_PER_TASK;
    const fl_taps_t k = tile_taps(j);
    int64_t y0[PIXELS_PER_TASK], x0[PIXELS_PER_TASK], img[PIXELS_PER_TASK];
    int64_t src[PIXELS_PER_TASK];                 /* a row's first source, -1: padding */
    int64_t ox = p0 % L->ow, t = p0 / L->ow;
    int64_t oy = t % L->oh, n = t / L->oh;
    for (int r = 0; r < R; r++) {
        y0[r] = oy * L->sh - L->pt;
        x0[r] = ox * L->sw - L->pl;
        img[r] = n * L->ih;
        if (++ox == L->ow) {
            ox = 0;
            if (++oy == L->oh) {
                oy = 0;
                n++;
            }
        }
    }
    if (j->xs != NULL)
        memset(s->anan, 0, (size_t)(groups * R * ng));
    int64_t ky = k.tap0 / L->kw, kx = k.tap0 % L->kw;
    for (int64_t tap = k.tap0; tap < k.tap1; tap++) {
        int64_t c0, c1;
        int64_t e = tap_run(&k, cin_g, tap, &c0, &c1), len = c1 - c0;
        for (int r = 0; r < R; r++) {
            int64_t y = y0[r] + ky * L->dh, x = x0[r] + kx * L->dw;
            int inside = y >= 0 && y < (int64_t)L->ih && x >= 0 && x < (int64_t)L->iw;
            src[r] = inside ? ((img[r] + y) * L->iw + x) * (int64_t)L->cin + c0 : -1;
        }
        for (int64_t i = 0; i < len; i++) {
            for (int64_t cg = 0; cg < groups; cg++) {
                int32_t *de = s->ae + (e + i) * elem + cg * plane;
                int32_t *dm = s->am + (e + i) * elem + cg * plane;
                const int64_t off = cg * cin_g + i;
                for (int r = 0; r < R; r++) {
                    de[r] = src[r] >= 0 ? j->xe[src[r] + off] : 0;
                    dm[r] = src[r] >= 0 ? j->xm[src[r] + off] : 0;
                }
                if (j->xs == NULL)
                    continue;
                for (int r = 0; r < R; r++) {
                    if (src[r] >= 0)
                        s->anan[((int64_t)r * groups + cg) * ng + (e + i) / BITLET_GROUP] |=
                            j->xs[src[r] + off];
                }
            }
        }
        if (++kx == L->kw) {
            kx = 0;
            ky++;
        }
    }
}

/* Start value of output (pixel px, channel co): ACC partial or +0. */
static void start_values(const fl_job_t *j, int64_t p0, int R, uint32_t c0, uint32_t C,
                         float *sum_f, int64_t *sum_i)
{
    const fl_desc_t *d = &j->d;
    const bk_insn_t *L = &d->b;
    if (!(L->flags & BITLET_FLAG_ACCUM)) {       /* +0 (all-zero bits) */
        if (L->isfix)
            memset(sum_i, 0, sizeof(int64_t) * (size_t)R * C);
        else
            memset(sum_f, 0, sizeof(float) * (size_t)R * C);
        return;
    }
    for (int r = 0; r < R; r++) {
        for (uint32_t c = 0; c < C; c++) {
            int64_t at = (int64_t)r * C + c;
            uint64_t idx = (uint64_t)(p0 + r) * L->out_cs + L->out_coff + c0 + c;
            if (L->isfix) {
                sum_i[at] = ((const int64_t *)d->acc)[idx];
            } else {
                sum_f[at] = bits_f(((const uint32_t *)d->acc)[idx]);
            }
        }
    }
}

/* The output stage (bitlet_ctl.h) on R x C sums.  Float modes add the bias
 * with the host's binary32 addition and run bk_final_float without it: the
 * same bits as the kernel's bk_f32_add inside bk_final_float (IEEE RNE,
 * subnormals kept), except a NaN's payload, which bk_final_float replaces
 * by the canonical NaN either way (and ReLU keeps NaN); about 2x faster on
 * one-group layers, where the output stage is a large part of the work. */
/* One output: sum (at) of channel co to element idx of the output. */
static inline void write_one(const fl_desc_t *d, const bk_insn_t *nobias, int partial, int half,
                             int bias, uint64_t idx, uint32_t co, const float *sum_f,
                             const int64_t *sum_i, int64_t at)
{
    const bk_insn_t *L = &d->b;
    if (L->isfix) {
        if (partial)
            ((int64_t *)d->out)[idx] = sum_i[at];
        else
            ((uint32_t *)d->out)[idx] = bk_final_fixed(
                L, sum_i[at], bias ? ((const int64_t *)d->bias)[co] : 0);
    } else if (partial) {
        ((uint32_t *)d->out)[idx] = bk_partial_float(f_bits(sum_f[at]));
    } else {
        float v = bias ? sum_f[at] + ((const float *)d->bias)[co] : sum_f[at];
        uint32_t u = bk_final_float(nobias, f_bits(v), 0u);
        if (half)
            ((uint16_t *)d->out)[idx] = (uint16_t)u;
        else
            ((uint32_t *)d->out)[idx] = u;
    }
}

static void write_outputs(const fl_job_t *j, int64_t p0, int R, uint32_t c0, uint32_t C,
                          const float *sum_f, const int64_t *sum_i)
{
    const fl_desc_t *d = &j->d;
    const bk_insn_t *L = &d->b;
    bk_insn_t nobias = *L;
    int partial = (L->flags & BITLET_FLAG_PARTIAL) != 0;
    int half = !L->isfix && !partial && bk_elem_bytes(L->ofmt) == 2u;
    int bias = (L->flags & BITLET_FLAG_BIAS) != 0;
    nobias.flags &= ~(uint32_t)BITLET_FLAG_BIAS;
    if (d->out_t > 0) {           /* planar host layout: channel by channel */
        for (uint32_t c = 0; c < C; c++) {
            uint64_t base = (uint64_t)(L->out_coff + c0 + c) * (uint64_t)d->out_t + (uint64_t)p0;
            for (int r = 0; r < R; r++)
                write_one(d, &nobias, partial, half, bias, base + (uint64_t)r, c0 + c, sum_f,
                          sum_i, (int64_t)r * C + c);
        }
        return;
    }
    if (!L->isfix && !partial && !half) {        /* the common case, unswitched */
        const float *b = bias ? (const float *)d->bias + c0 : NULL;
        for (int r = 0; r < R; r++) {
            uint32_t *out = (uint32_t *)d->out + (uint64_t)(p0 + r) * L->out_cs + L->out_coff + c0;
            const float *sr = sum_f + (int64_t)r * C;
            for (uint32_t c = 0; c < C; c++)
                out[c] = bk_final_float(&nobias, f_bits(b != NULL ? sr[c] + b[c] : sr[c]), 0u);
        }
        return;
    }
    for (int r = 0; r < R; r++) {
        for (uint32_t c = 0; c < C; c++) {
            uint32_t co = c0 + c;
            uint64_t idx = (uint64_t)(p0 + r) * L->out_cs + L->out_coff + co;
            write_one(d, &nobias, partial, half, bias, idx, co, sum_f, sum_i, (int64_t)r * C + c);
        }
    }
}

/* Compute-stage steps of the units of one block (pixels r0 .. r1-1 of one
 * output row, pixel r0 at ox0) from S [cg][R][cout_g][ng]:
 *   step(ox, g) = max(1 + max S over the batch's PEs, waves(ox, g), weight reads),
 *   cp[b] = sum of the block's steps (the unit's LAT is added later);
 * and the reference schedule (each channel group of the batch costs
 * LAT + 1 + its max S), groups and sum of S into p. */
static void block_cycles(const fl_job_t *j, const uint8_t *scan, int R, int r0, int r1,
                         uint32_t ox0, const uint32_t *waves, bk_prof_t *p, uint64_t *cp)
{
    const fl_desc_t *d = &j->d;
    const fs_sched_t *sc = &j->sched;
    const uint32_t ng = d->ng, cout_g = d->b.cout_g;
    const uint64_t lat = sc->lat;
    const uint32_t nb = sc->nb;
    uint64_t scan_sum = 0, ref = 0, groups = 0;
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t c0 = sc->b_c0[b], cnt = sc->b_cnt[b], nseg = 0;
        uint32_t seg_len[BITLET_N_PE];
        int64_t seg_base[BITLET_N_PE];
        uint64_t steps = 0;
        /* the batch's channel groups (sub-batches of the reference
         * schedule): S of (channel co, pixel r, group g) is at
         * [((cg * R + r) * cout_g + co % cout_g) * ng + g], cg = co / cout_g */
        for (uint32_t q = 0; q < cnt; q += seg_len[nseg++]) {
            uint32_t co = c0 + q, cg = co / cout_g, k0 = co - cg * cout_g;
            seg_len[nseg] = cnt - q < cout_g - k0 ? cnt - q : cout_g - k0;
            seg_base[nseg] = ((int64_t)cg * R * cout_g + k0) * ng;
        }
        for (int r = r0; r < r1; r++) {
            const uint32_t *wv = waves + ((uint64_t)sc->xcls[ox0 + (uint32_t)(r - r0)] * sc->kinds
                                          + sc->b_kind[b]) * ng;
            for (uint32_t g = 0; g < ng; g++) {
                uint32_t mb = 0, step;
                for (uint32_t sg = 0; sg < nseg; sg++) {
                    const uint8_t *sp = scan + seg_base[sg] + (int64_t)r * cout_g * ng + g;
                    uint32_t m = 0;
                    for (uint32_t t = 0; t < seg_len[sg]; t++) {
                        uint32_t sv = sp[(int64_t)t * ng];
                        scan_sum += sv;
                        m = sv > m ? sv : m;
                    }
                    ref += lat + 1u + m;
                    mb = m > mb ? m : mb;
                }
                step = 1u + mb;
                steps += step > wv[g] ? step : wv[g];
                groups += cnt;
            }
        }
        cp[b] = steps;
    }
    p->scan += scan_sum;
    p->ref += ref;
    p->groups += groups;
}

static void block_task(void *ctx, int64_t task, int worker)
{
    fl_job_t *j = (fl_job_t *)ctx;
    const fl_desc_t *d = &j->d;
    fl_scratch_t *s = (fl_scratch_t *)j->scratch[worker];
    int64_t ow = d->b.ow;
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
    uint32_t cout_g = d->b.cout_g, ng = d->ng;
    /* 1x1 layers with stride 1 and no padding (GEMM too): the patch of
     * pixel p is row p of the unpacked input, read in place (while no
     * input is Inf/NaN: gather flags those) */
    const int direct = j->direct && j->xs == NULL;
    if (j->lanes)
        gather_lanes(j, s, p0, R);
    else if (!direct)
        gather(j, s, p0, R);
    for (uint32_t cg = 0; cg < d->b.groups; cg++) {
        uint32_t cbase = cg * cout_g;
        uint8_t *anan = s->anan + (int64_t)cg * ng;
        int64_t cg_off = (int64_t)cg * (j->lanes ? PIXELS_PER_TASK : j->stride);
        int32_t *ae = s->ae + cg_off;
        int32_t *am = s->am + cg_off;
        if (direct) {
            int64_t at = p0 * (int64_t)d->b.cin + (int64_t)d->b.kgb * BITLET_GROUP;
            ae = j->xe + at;
            am = j->xm + at;
        }
        start_values(j, p0, R, cbase, cout_g, s->sum_f, s->sum_i);
        uint8_t *scan_cg = j->want_cycles ? s->scan + (int64_t)cg * R * cout_g * ng : NULL;
        /* channel blocks keep a block's weights in cache over the R rows */
        for (int64_t cb = 0; cb < cout_g; cb += j->ch_block) {
            int64_t C = cout_g - cb < j->ch_block ? cout_g - cb : j->ch_block;
            fk_tile_t t;
            int64_t wrow = (int64_t)cbase + cb;
            t.isfix = (int)d->b.isfix;
            t.prune = d->b.prune & FK_SIG_MASK;
            t.ng = (int)ng;
            t.glen = j->glen;
            t.C = (int)C;
            t.wstride = j->wpitch;
            t.we = j->we + wrow * j->wpitch;
            t.wa = j->wa + wrow * j->wpitch;
            t.wn = j->wn + wrow * j->wpitch;
            t.wnan = j->wnan + wrow * ng;
            t.wscan = j->wscan != NULL ? j->wscan + wrow * ng : NULL;
            t.R = R;
            t.lanes = j->lanes;
            t.astride = direct ? (int64_t)d->b.cin
                               : (int64_t)d->b.groups * (j->lanes ? PIXELS_PER_TASK : j->stride);
            t.nan_stride = (int64_t)d->b.groups * ng;
            t.ae = ae;
            t.am = am;
            t.anan = anan;
            /* sums and S are laid out [R][cout_g]: point at column cb */
            t.sum_f = s->sum_f;
            t.sum_i = s->sum_i;
            t.scan = scan_cg;
            t.col0 = (int)cb;
            t.ldc = (int)cout_g;
            if (j->tile4) {
                int done = fk_tile4_fp32(&t);
                if (done == t.C)
                    continue;
                t.C -= done;                       /* the last channels */
                t.we += (int64_t)done * t.wstride;
                t.wa += (int64_t)done * t.wstride;
                t.wn += (int64_t)done * t.wstride;
                t.wnan += (int64_t)done * ng;
                t.col0 += done;
            }
            j->ops->tile(&t);
        }
        write_outputs(j, p0, R, cbase, cout_g, s->sum_f, s->sum_i);
    }
    if (!j->want_cycles)
        return;
    if (j->chunks_per_row > 1) {                     /* a chunk of one row */
        int64_t row = task / j->chunks_per_row;
        block_cycles(j, s->scan, R, 0, R, (uint32_t)(p0 - row * ow),
                     fs_waves_of(&j->sched, (uint64_t)row, s->waves), &j->wprof[worker],
                     j->cp + (uint64_t)task * j->sched.nb);
    } else {                                         /* whole rows */
        for (int r0 = 0; r0 < R; r0 += (int)ow) {
            int64_t row = p0 / ow + r0 / ow;
            block_cycles(j, s->scan, R, r0, r0 + (int)ow, 0u,
                         fs_waves_of(&j->sched, (uint64_t)row, s->waves), &j->wprof[worker],
                         j->cp + (uint64_t)row * j->sched.nb);
        }
    }
}

/* One shared waves table (fast_sched.c). */
static void table_task(void *ctx, int64_t t, int worker)
{
    fl_job_t *j = (fl_job_t *)ctx;
    (void)worker;
    fs_table_fill(&j->sched, (uint32_t)t);
}

/* ------------------------------------------------------------------ */
/* the layer                                                           */
/* ------------------------------------------------------------------ */

/* Threads for `work` units when `unit` of them are worth a thread: at
 * most `threads`, at least 1. */
static int threads_for(int threads, double work, double unit)
{
    double t = work / unit;
    return t >= threads ? threads : (t < 1.0 ? 1 : (int)t);
}

/* The working memory of a layer: one block, kept between calls (a layer's
 * buffers are megabytes: fresh pages each call cost page faults and the
 * kernel's zeroing, a large part of a small layer's time).  Requests are
 * carved from the block in order; what does not fit gets its own
 * allocation, and the block is resized to the total when it is returned.
 * One block is cached for the process (taken with an atomic exchange:
 * concurrent calls each get their own); blocks above WS_KEEP_BYTES are
 * not kept. */
#define WS_KEEP_BYTES ((size_t)256 << 20)

typedef struct ws_extra { struct ws_extra *next; } ws_extra_t;

typedef struct {
    unsigned char *buf;
    size_t cap, used, want;
    ws_extra_t *extra;            /* allocations that did not fit          */
} fl_ws_t;

#if defined(__GNUC__) || defined(__clang__)
#define WS_CACHED 1
static fl_ws_t *ws_cache = NULL;
#endif

static fl_ws_t *ws_take(void)
{
    fl_ws_t *w = NULL;
#ifdef WS_CACHED
    w = __atomic_exchange_n(&ws_cache, (fl_ws_t *)NULL, __ATOMIC_ACQ_REL);
#endif
    if (w == NULL)
        w = (fl_ws_t *)calloc(1, sizeof(fl_ws_t));
    if (w == NULL)
        return NULL;
    if (w->buf == NULL && w->want > 0) {
        w->buf = (unsigned char *)fk_alloc(w->want);
        w->cap = w->buf != NULL ? w->want : 0;
    }
    w->used = 0;
    w->extra = NULL;
    return w;
}

static void ws_drop(fl_ws_t *w)
{
    fk_free(w->buf);
    free(w);
}

static void ws_give(fl_ws_t *w)
{
    size_t total = w->used;
    int grow = w->extra != NULL;
    while (w->extra != NULL) {
        ws_extra_t *e = w->extra;
        w->extra = e->next;
        fk_free(e);
    }
    if (grow) {                   /* one block of the whole size next time */
        fk_free(w->buf);
        w->buf = NULL;
        w->cap = 0;
        w->want = total;
    }
    if (total > WS_KEEP_BYTES || w->cap > WS_KEEP_BYTES) {
        ws_drop(w);
        return;
    }
#ifdef WS_CACHED
    w = __atomic_exchange_n(&ws_cache, w, __ATOMIC_ACQ_REL);
#endif
    if (w != NULL)
        ws_drop(w);
}

/* bytes of 64-byte aligned memory, zeroed unless zero = 0; NULL if out of
 * memory.  Valid until ws_give. */
static void *ws_get(fl_ws_t *w, size_t bytes, int zero)
{
    size_t size = (bytes + FK_ALIGN - 1) / FK_ALIGN * FK_ALIGN;
    if (size == 0)
        size = FK_ALIGN;
    if (w->used + size > w->cap) {
        ws_extra_t *e = (ws_extra_t *)fk_alloc(FK_ALIGN + size);   /* zeroed */
        if (e == NULL)
            return NULL;
        e->next = w->extra;
        w->extra = e;
        w->used += size;
        return (unsigned char *)e + FK_ALIGN;
    }
    void *p = w->buf + w->used;
    w->used += size;
    if (zero)
        memset(p, 0, size);
    return p;
}

static void free_job(fl_job_t *j)
{
    if (j->ws != NULL)
        ws_give(j->ws);
    j->ws = NULL;
    fs_free(&j->sched);
}

#define BAIL_IF_NULL(p) do { if ((p) == NULL) { free_job(&j); return -1; } } while (0)

/* Run a validated layer; returns 0, or -1 if memory ran out (nothing
 * was written to the output then).  prof != NULL: the cycle model too
 * (all counters but the START / END stamps). */
static int run_layer(const fl_desc_t *d, bk_prof_t *prof, int threads)
{
    fl_job_t j;
    memset(&j, 0, sizeof(j));
    j.d = *d;
    j.ws = ws_take();
    if (j.ws == NULL)
        return -1;
    fl_ws_t *ws = (fl_ws_t *)j.ws;
    j.ops = fk_ops_current();
    j.threads = fk_resolve_threads(threads);
    j.want_cycles = prof != NULL;
    const bk_insn_t *L = &d->b;
    uint32_t ng = d->ng;
    /* group lengths: the real elements rounded up to FK_VEC */
    j.glen = (int32_t *)ws_get(ws, sizeof(int32_t) * ng, 1);
    BAIL_IF_NULL(j.glen);
    for (uint32_t g = 0; g < ng; g++) {
        int64_t first = ((int64_t)L->kgb + g) * BITLET_GROUP;
        int64_t real = (int64_t)L->k - first;
        if (real > BITLET_GROUP)
            real = BITLET_GROUP;
        j.glen[g] = (int32_t)((real + FK_VEC - 1) / FK_VEC * FK_VEC);
    }
    j.stride = (int64_t)(ng - 1u) * BITLET_GROUP + j.glen[ng - 1u];
    /* weight rows 4 KiB apart would share the L1 cache's sets (the AVX-512
     * tiles read four rows at once): pad them to an odd number of 64-byte
     * lines then */
    j.wpitch = j.stride % (2 * FK_VEC) == 0 ? j.stride + FK_VEC : j.stride;
    size_t wcount = (size_t)L->cout * (size_t)j.wpitch;
    j.we = (int32_t *)ws_get(ws, wcount * sizeof(int32_t), 0);
    j.wa = (int32_t *)ws_get(ws, wcount * sizeof(int32_t), 0);
    j.wn = (int32_t *)ws_get(ws, wcount * sizeof(int32_t), 0);
    j.wnan = (uint8_t *)ws_get(ws, (size_t)L->cout * ng, 1);
    BAIL_IF_NULL(j.we);
    BAIL_IF_NULL(j.wa);
    BAIL_IF_NULL(j.wn);
    BAIL_IF_NULL(j.wnan);
    if (L->isfix && j.want_cycles) {
        j.wscan = (uint8_t *)ws_get(ws, (size_t)L->cout * ng, 1);
        BAIL_IF_NULL(j.wscan);
    }
    size_t xcount = (size_t)L->n * L->ih * L->iw * L->cin;
    j.xe = (int32_t *)ws_get(ws, xcount * sizeof(int32_t), 0);
    j.xm = (int32_t *)ws_get(ws, xcount * sizeof(int32_t), 0);
    BAIL_IF_NULL(j.xe);
    BAIL_IF_NULL(j.xm);
    j.xs = (uint8_t *)ws_get(ws, L->isfix ? 1 : xcount, 1);
    j.act_tasks = d->act_t > 0 ? planar_tasks(d) : (int64_t)L->n * L->ih;
    j.row_special = (uint8_t *)ws_get(ws, (size_t)j.act_tasks, 1);
    BAIL_IF_NULL(j.xs);
    BAIL_IF_NULL(j.row_special);
    j.n_px = (int64_t)L->n * L->oh * L->ow;
    j.lanes = ng == 1;
    /* rows of cin elements, each holding the whole K tile (a tile's last
     * group read up to a multiple of FK_VEC: cin must be one) */
    j.direct = !j.lanes && L->groups == 1u && L->kh == 1u && L->kw == 1u && L->sh == 1u
               && L->sw == 1u && L->pt == 0u && L->pl == 0u && L->pb == 0u && L->pr == 0u
               && L->oh == L->ih && L->ow == L->iw && L->cin % FK_VEC == 0u
               && (int64_t)L->kgb * BITLET_GROUP + j.stride <= (int64_t)L->cin;
    j.planar16 = fk_tile4_usable(j.ops);
    j.tile4 = !j.want_cycles && !L->isfix && !j.lanes
              && (L->prune & FK_SIG_MASK) == FK_SIG_MASK && fk_tile4_usable(j.ops);
    for (uint32_t g = 0; g < ng && j.tile4; g++)
        j.tile4 = j.glen[g] == BITLET_GROUP;       /* whole groups only */
    int64_t wrow_bytes = j.wpitch * 3 * (int64_t)sizeof(int32_t);
    j.ch_block = TILE_WEIGHT_BYTES / wrow_bytes;
    if (j.tile4 && j.ch_block >= 4)
        j.ch_block -= j.ch_block % 4;              /* whole quads of channels */
    if (j.ch_block < 1)
        j.ch_block = 1;
    j.n_rows = (int64_t)L->n * L->oh;
    j.chunks_per_row = ((int64_t)L->ow + PIXELS_PER_TASK - 1) / PIXELS_PER_TASK;
    j.rows_per_task = j.chunks_per_row > 1 ? 1 : PIXELS_PER_TASK / (int64_t)L->ow;
    if (j.want_cycles) {
        if (fs_init(&j.sched, L) != 0) {
            free_job(&j);
            return -1;
        }
        if (fs_rows(&j.sched) != 0) {
            free_job(&j);
            return -1;
        }
        fs_tables_alloc(&j.sched);
        j.cp = (uint64_t *)ws_get(ws, sizeof(uint64_t) * (size_t)j.n_rows *
                                    (size_t)j.chunks_per_row * j.sched.nb, 1);
        BAIL_IF_NULL(j.cp);
    }
    /* small layers run on fewer threads (S costs ~3x the products) */
    j.threads = threads_for(j.threads, (double)j.n_px * L->cout * ng * (j.want_cycles ? 4 : 1),
                            MIN_GROUPS_PER_THREAD);
    if (j.chunks_per_row == 1 && j.threads > 1) {
        /* narrow rows (GEMM: rows of one pixel): at least TASKS_PER_THREAD
         * tasks per thread when the layer has them, so that a thread the
         * machine slows down leaves little work at the end; at least
         * MIN_TASK_PIXELS pixels a task */
        int64_t rows = j.n_rows / ((int64_t)TASKS_PER_THREAD * j.threads);
        int64_t least = (MIN_TASK_PIXELS + (int64_t)L->ow - 1) / (int64_t)L->ow;
        rows = rows > least ? rows : least;
        j.rows_per_task = rows < j.rows_per_task ? rows : j.rows_per_task;
    }
    int64_t n_tasks = j.chunks_per_row > 1 ? j.n_rows * j.chunks_per_row
                                           : (j.n_rows + j.rows_per_task - 1) / j.rows_per_task;
    j.workers = j.threads < n_tasks ? j.threads : (int)n_tasks;
    if (j.workers < 1)
        j.workers = 1;
    j.scratch = (void **)ws_get(ws, (size_t)j.workers * sizeof(void *), 1);
    BAIL_IF_NULL(j.scratch);
    j.wprof = (bk_prof_t *)ws_get(ws, sizeof(bk_prof_t) * (size_t)j.workers, 1);
    BAIL_IF_NULL(j.wprof);
    for (int w = 0; w < j.workers; w++) {
        fl_scratch_t *s = (fl_scratch_t *)ws_get(ws, sizeof(fl_scratch_t), 1);
        BAIL_IF_NULL(s);
        j.scratch[w] = s;
        size_t rows = PIXELS_PER_TASK;
        size_t patches = (size_t)L->groups * rows * (size_t)j.stride;
        s->ae = (int32_t *)ws_get(ws, patches * sizeof(int32_t), 1);
        s->am = (int32_t *)ws_get(ws, patches * sizeof(int32_t), 1);
        s->anan = (uint8_t *)ws_get(ws, (size_t)L->groups * rows * ng, 1);
        if (L->isfix)
            s->sum_i = (int64_t *)ws_get(ws, rows * L->cout_g * sizeof(int64_t), 1);
        else
            s->sum_f = (float *)ws_get(ws, rows * L->cout_g * sizeof(float), 1);
        BAIL_IF_NULL(s->ae);
        BAIL_IF_NULL(s->am);
        BAIL_IF_NULL(s->anan);
        BAIL_IF_NULL(L->isfix ? (void *)s->sum_i : (void *)s->sum_f);
        if (j.want_cycles) {
            s->scan = (uint8_t *)ws_get(ws, rows * (size_t)L->cout * ng, 1);
            BAIL_IF_NULL(s->scan);
            if (j.sched.tables == NULL) {      /* no shared tables: per task */
                s->waves = (uint32_t *)ws_get(ws, sizeof(uint32_t) *
                                                (size_t)fs_waves_size(&j.sched), 1);
                BAIL_IF_NULL(s->waves);
            }
        }
    }
    fk_parallel_for(threads_for(j.threads, (double)L->cout * j.stride, MIN_ELEMS_PER_THREAD),
                    L->cout, prep_weights_task, &j);
    fk_parallel_for(threads_for(j.threads, (double)xcount, MIN_ELEMS_PER_THREAD), j.act_tasks,
                    d->act_t > 0 ? prep_act_planar_task : prep_act_task, &j);
    if (memchr(j.row_special, 1, (size_t)j.act_tasks) == NULL) {
        j.xs = NULL;               /* no Inf/NaN input: gather skips the flags */
    }
    if (j.want_cycles && j.sched.tables != NULL)
        fk_parallel_for(j.threads, j.sched.n_tables, table_task, &j);
    fk_parallel_for(j.threads, n_tasks, block_task, &j);
    if (prof != NULL) {
        memset(prof, 0, sizeof(*prof));
        for (int w = 0; w < j.workers; w++) {
            prof->ref += j.wprof[w].ref;
            prof->groups += j.wprof[w].groups;
            prof->scan += j.wprof[w].scan;
        }
        fs_totals(&j.sched, j.cp, (uint64_t)j.chunks_per_row, d->insn_addr, prof);
    }
    free_job(&j);
    return 0;
}

/* decode + the kernel's checks that need no bus window. */
static uint32_t prepare(const uint32_t *words, fl_desc_t *d)
{
    uint32_t st;
    bk_decode(words, &d->b);
    st = bk_validate(&d->b, BITLET_KIND_BITLET);
    if (st != BITLET_STATUS_OK)
        return st;
    d->ng = d->b.kge - d->b.kgb;
    return BITLET_STATUS_OK;
}

int bitlet_fast_layer(const uint32_t *insn, uint64_t insn_addr, const bitlet_fast_buffers_t *buf,
                      uint64_t timestamp, bitlet_fast_prof_t *prof, int threads)
{
    fl_desc_t d;
    bk_prof_t p;
    memset(&d, 0, sizeof(d));
    uint32_t st = prepare(insn, &d);
    if (st == BITLET_STATUS_OK)
        st = bk_check_buffers(&d.b);
    d.insn_addr = insn_addr;
    d.act = buf->act;
    d.wgt = buf->wgt;
    d.bias = (d.b.flags & BITLET_FLAG_BIAS) ? buf->bias : NULL;
    d.acc = (d.b.flags & BITLET_FLAG_ACCUM) ? buf->acc : NULL;
    d.out = buf->out;
    d.act_t = buf->act_t;
    d.out_t = buf->out_t;
    d.wgt_ld = buf->wgt_ld;
    if (st == BITLET_STATUS_OK)
        st = check_bias(&d);
    if (st != BITLET_STATUS_OK)
        return (int)st;
    fk_tables_init();
    fk_fpenv_t env;
    fk_fpenv_enter(&env);
    int rc = run_layer(&d, prof != NULL ? &p : NULL, threads);
    fk_fpenv_leave(&env);
    if (rc != 0)
        return -1;
    if (prof != NULL) {
        prof->pe_cycles = p.pe;
        prof->ref_cycles = p.ref;
        prof->kernel_cycles = p.kernel;
        prof->groups = p.groups;
        prof->scan = p.scan;
        prof->ddr_bytes = p.ddr;
        prof->start = timestamp;
        prof->end = timestamp + p.kernel;
    }
    return BITLET_STATUS_OK;
}

/* ------------------------------------------------------------------ */
/* the instruction loop over a DDR arena                               */
/* ------------------------------------------------------------------ */

typedef struct {
    uint8_t *mem;
    uint64_t base;
    uint32_t size;
} fl_bus_t;

static void *host_ptr(const fl_bus_t *bus, uint64_t addr)
{
    return bus->mem + (addr - bus->base);
}

/* One instruction as the kernel's run_one: fetch (window check of the
 * fetch and the profile slot), decode, checks, run, profile record.
 * *cycles: its KERNEL_CYCLES when the model ran (else 0). */
static uint32_t run_one(fl_bus_t *bus, uint64_t insn_addr, uint64_t prof_slot, uint64_t now,
                        int want_prof, int threads, uint64_t *cycles)
{
    bk_prof_t prof;
    fl_desc_t d;
    uint32_t st, words[BITLET_INSN_WORDS];
    memset(&prof, 0, sizeof(prof));
    memset(&d, 0, sizeof(d));
    *cycles = 0;
    if (!bk_in_window(bus->base, bus->size, insn_addr, BITLET_INSN_BYTES, BITLET_AXI_BYTES)
        || (prof_slot && !bk_in_window(bus->base, bus->size, prof_slot, BITLET_PROF_BYTES,
                                       BITLET_AXI_BYTES)))
        return BITLET_STATUS_BUS_ERROR;
    memcpy(words, host_ptr(bus, insn_addr), sizeof(words));
    bk_decode(words, &d.b);
    d.insn_addr = insn_addr;
    if (d.b.op == BITLET_OP_NOP) {
        st = BITLET_STATUS_OK;
        if (want_prof) {
            prof.kernel = BITLET_INSN_OVERHEAD_CYCLES + bk_xfer_cycles(insn_addr, BITLET_INSN_BYTES);
            prof.ddr = bk_beats(insn_addr, BITLET_INSN_BYTES) * BITLET_AXI_BYTES;
        }
    } else if ((st = prepare(words, &d)) == BITLET_STATUS_OK
               && (st = bk_check_extents(bus->base, bus->size, &d.b)) == BITLET_STATUS_OK
               && (st = bk_check_buffers(&d.b)) == BITLET_STATUS_OK) {
        d.act = host_ptr(bus, d.b.act);
        d.wgt = host_ptr(bus, d.b.wgt);
        d.bias = (d.b.flags & BITLET_FLAG_BIAS) ? host_ptr(bus, d.b.bias) : NULL;
        d.acc = (d.b.flags & BITLET_FLAG_ACCUM) ? host_ptr(bus, d.b.acc) : NULL;
        d.out = host_ptr(bus, d.b.out);
        st = check_bias(&d);
        if (st == BITLET_STATUS_OK) {
            int rc = run_layer(&d, want_prof ? &prof : NULL, threads);
            if (rc != 0)
                st = BITLET_STATUS_BUF_OVERFLOW;   /* host out of memory */
        }
    }
    if (st == BITLET_STATUS_OK) {
        prof.start = now;
        prof.end = now + prof.kernel;
        *cycles = prof.kernel;
    } else {
        memset(&prof, 0, sizeof(prof));
        prof.start = prof.end = now;
    }
    if (prof_slot) {
        uint32_t rec[BITLET_PROF_WORDS];
        bk_prof_record(rec, st, d.b.layer, &prof);
        memcpy(host_ptr(bus, prof_slot), rec, sizeof(rec));
    }
    return st;
}

void bitlet_fast_top(uint64_t *mem, uint64_t mem_base, uint32_t mem_size,
                     uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
                     const volatile uint64_t *timestamp, uint32_t *status,
                     uint32_t *insn_done, uint32_t *id_magic, uint32_t *id_version,
                     uint32_t *id_config, uint32_t *id_act_buf, uint32_t *id_wgt_buf,
                     uint32_t *id_out_buf, uint64_t *clock, int want_prof, int threads)
{
    fl_bus_t bus;
    uint32_t i, st = BITLET_STATUS_OK;
    uint64_t model = 0, t0 = *timestamp;  /* the kernel's C-simulation stamps: the
                                           * counter does not move during a call */
    *id_magic = BITLET_MAGIC;
    *id_version = BITLET_ISA_VERSION;
    *id_config = bk_id_config(BITLET_KIND_BITLET);
    *id_act_buf = BITLET_ACT_BUF_WORDS;
    *id_wgt_buf = BITLET_WGT_BUF_WORDS;
    *id_out_buf = BITLET_OUT_BUF_WORDS;
    bus.mem = (uint8_t *)mem;
    bus.base = mem_base;
    bus.size = mem_size;
    if (mem_base % BITLET_AXI_BYTES || mem_size % BITLET_AXI_BYTES) {
        st = n_insn ? BITLET_STATUS_BUS_ERROR : BITLET_STATUS_OK;
        n_insn = 0;
    }
    fk_tables_init();
    fk_fpenv_t env;
    fk_fpenv_enter(&env);
    for (i = 0; i < n_insn; i++) {
        uint64_t slot = prof_addr ? prof_addr + (uint64_t)BITLET_PROF_BYTES * i : 0u;
        uint64_t cycles;
        st = run_one(&bus, prog_addr + (uint64_t)BITLET_INSN_BYTES * i, slot, t0 + model,
                     want_prof, threads, &cycles);
        if (st != BITLET_STATUS_OK)
            break;
        model += cycles;
    }
    fk_fpenv_leave(&env);
    *status = st;
    *insn_done = i;
    *clock = t0 + model;
}
