/*
 * fast_internal.h -- shared declarations of the fast engine's C files.
 *
 * Data layout used by the kernels ("unpacked" operands, one int32 per
 * element, rows of a layer's dot products zero padded per 64-group):
 *   weights     we = port exponent, wa = port abs (24 bits), wn = 0 or -1
 *               (sign mask); fixed mode: wa = abs & prune (sign in wn).
 *   activations ae = unpacked exponent, am = signed significand (fp32:
 *               +-aman; fixed: the 25-bit two's complement value).
 * Group g of a row covers elements [64 g, 64 g + glen[g]); elements past
 * the layer's K are zeros (w = +0, a = +0), which never change a result.
 */
#ifndef BITLET_FAST_INTERNAL_H
#define BITLET_FAST_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include "bitlet_hw.h"
#include "bitlet_ctl.h"
#include "bitlet_fast.h"

/* The engine's bit tricks (64-bit columns, 8-bit windows, byte planes of
 * 24-bit significands, 15-bit scanner tables) are written for these. */
#if BITLET_GROUP != 64 || BITLET_WINDOW != 8 || BITLET_SIG_BITS != 24
#error "emu/ is specialised for 64-pair groups, 8-bit windows and 24 bit columns"
#endif

#define FK_GROUP      BITLET_GROUP
#define FK_COLS       BITLET_SIG_BITS
#define FK_SIG_MASK   ((uint32_t)BITLET_PRUNE_MASK)
#define FK_VEC        16          /* group lengths are multiples of this   */
#define FK_ALIGN      64          /* byte alignment of kernel buffers      */
#define FK_EXP_SPECIAL 255        /* biased exponent of Inf/NaN            */

#if defined(__GNUC__) || defined(__clang__)
#define FK_RESTRICT __restrict__
#define FK_INLINE static inline __attribute__((always_inline))
#define FK_ALIGNED(n) __attribute__((aligned(n)))
#elif defined(_MSC_VER)
#define FK_RESTRICT __restrict
#define FK_INLINE static __forceinline
#define FK_ALIGNED(n)
#else
#define FK_RESTRICT
#define FK_INLINE static inline
#define FK_ALIGNED(n)
#endif

/* One tile of a layer: R activation rows x C output channels, ng groups. */
typedef struct {
    int isfix;
    uint32_t prune;                 /* 24-bit mask                           */
    int ng;                         /* groups per row                        */
    const int32_t *glen;            /* [ng] elements per group (mult of 16)  */
    /* weights: C rows, row stride wstride elements */
    int C;
    int64_t wstride;
    const int32_t *we, *wa, *wn;
    const uint8_t *wnan;            /* [C][ng] an Inf/NaN weight (fp32)      */
    const uint8_t *wscan;           /* [C][ng] S of fixed-mode groups        */
    /* activations: R rows, row stride astride elements; lanes = 1: one
     * group (ng = 1), patches transposed: element k of row r at
     * ae[k * astride + r] (FK_VEC rows at a time) */
    int R;
    int lanes;
    int64_t astride;
    const int32_t *ae, *am;
    const uint8_t *anan;            /* [R] rows of nan_stride: an Inf/NaN
                                       activation in group g (fp32)          */
    int64_t nan_stride;
    /* running sums [R][ldc], this tile's channels at columns col0 + c,
     * updated in ascending group order */
    int col0, ldc;
    float *sum_f;                   /* fp32 mode: binary32 RNE sums          */
    int64_t *sum_i;                 /* fixed mode: exact int64 sums          */
    /* S of every group [R][ldc][ng], or NULL (no cycle accounting) */
    uint8_t *scan;
} fk_tile_t;

/* Independent port-level groups (bitlet_fast_group_batch). */
typedef struct {
    const uint8_t *w_sig, *w_exp;
    const uint32_t *w_abs, *a_word;
    const uint8_t *isfix;
    const uint32_t *prune;
    const uint8_t *quant;
    bitlet_fast_result_t *out;
    int want_cycles;
} fk_groups_t;

typedef struct {
    const char *name;
    void (*tile)(const fk_tile_t *t);
    /* S of one group from its 64 aligned, pruned weights (prune != 0). */
    int (*scan64)(const uint32_t *walign, uint8_t *col_steps);
    void (*groups)(const fk_groups_t *b, int64_t i0, int64_t i1);
    /* steps of the scanner over one column (table driven) */
    int (*scan_col)(uint64_t col);
} fk_ops_t;

/* fp32 activation word -> unpacked exponent and signed significand (F1). */
static inline void fk_unpack_act(uint32_t a, int32_t *aexp, int32_t *am)
{
    uint32_t e = (a >> 23) & 0xFFu;
    uint32_t mant = a & 0x7FFFFFu;
    uint32_t aman = (e != 0u ? 0x800000u : 0u) | mant;
    *aexp = (int32_t)((e == 0u && mant != 0u) ? 1u : e);
    *am = (a >> 31) ? -(int32_t)aman : (int32_t)aman;
}

/* fixed activation word (sign in bit 31, value bits 23..0) -> its value. */
static inline int32_t fk_fixed_act(uint32_t a)
{
    int32_t v = (int32_t)(a & FK_SIG_MASK);
    return (a >> 31) ? v - (int32_t)(FK_SIG_MASK + 1u) : v;
}

/* Kernels per ISA (fast_kern_*.c).  NULL when not compiled. */
const fk_ops_t *fk_ops_scalar(void);
const fk_ops_t *fk_ops_avx2(void);
const fk_ops_t *fk_ops_avx512(void);
const fk_ops_t *fk_ops_avx512v(void);   /* + VBMI, GFNI, VPOPCNTDQ */
const fk_ops_t *fk_ops_current(void);

/* Scanner tables (fast_core.c), built once by fk_tables_init(). */
extern uint16_t fk_scan_tab[(1 << 15) + 2]; /* steps | advance << 8          */
extern uint8_t fk_scan_tail[(1 << 8) + 4];  /* steps from p > 56 to the end  */
extern uint8_t fk_scan_small[1 << 15];      /* steps of a column < 2^15      */
void fk_tables_init(void);
int fk_scan_steps_slow(uint64_t col);

/* fp32 pack, truncating (NUMERICS.md s.2): E = emax - 173 + c, c = index
 * of the leading 1 of |acc|; subnormal results kept (F2). */
static inline uint32_t fk_pack_fp32_inline(int64_t acc, int32_t emax)
{
    if (acc == 0)
        return 0u;
    uint32_t sign = acc < 0 ? 0x80000000u : 0u;
    uint64_t mag = acc < 0 ? (uint64_t)0 - (uint64_t)acc : (uint64_t)acc;
#if defined(__GNUC__) || defined(__clang__)
    int c = 63 - __builtin_clzll(mag);
#else
    int c = 0;
    for (uint64_t m = mag; m >>= 1;)
        c++;
#endif
    int32_t E = emax - 173 + c;
    uint32_t N = (uint32_t)((c >= 23 ? mag >> (c - 23) : mag << (23 - c)) & FK_SIG_MASK);
    if (E > 254)
        return sign | 0x7F800000u;
    if (E >= 1)
        return sign | ((uint32_t)E << 23) | (N & 0x7FFFFFu);
    int32_t shift = 1 - E;
    return sign | (shift >= FK_COLS ? 0u : N >> shift);
}

/* Scalar helpers (fast_core.c). */
uint32_t fk_pack_fp32(int64_t acc, int32_t emax);
int64_t fk_floor_shift(int64_t acc, uint32_t quant);
int64_t fk_saturate_fixed(int64_t r);

/* Threads (fast_core.c): run fn(ctx, task, worker) for task in [0, n). */
typedef void (*fk_task_fn)(void *ctx, int64_t task, int worker);
void fk_parallel_for(int threads, int64_t n, fk_task_fn fn, void *ctx);
int fk_resolve_threads(int threads);

/* Floating-point environment guard: round to nearest, no flush-to-zero. */
typedef struct { unsigned int saved; int changed; } fk_fpenv_t;
void fk_fpenv_enter(fk_fpenv_t *env);
void fk_fpenv_leave(const fk_fpenv_t *env);

void *fk_alloc(size_t bytes);           /* aligned, zeroed; NULL on failure */
void fk_free(void *p);

#endif /* BITLET_FAST_INTERNAL_H */
