/*
 * fast_kern_x86.c -- fast_kern.inc compiled for AVX2 (+BMI/POPCNT) and for
 * AVX-512, selected at run time (fast_core.c checks the CPU).  The default
 * build stays portable: only these functions use the wider instructions.
 *
 * Built only on x86 with GCC or clang and without BITLET_FAST_NO_SIMD;
 * otherwise the accessors return NULL and the scalar kernels are used.
 */
#include "fast_internal.h"

#if !defined(BITLET_FAST_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__))
#define FK_HAVE_X86 1
#endif

#ifdef FK_HAVE_X86

/* ---- AVX2 -------------------------------------------------------- */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi,bmi2,popcnt,lzcnt"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2,popcnt,lzcnt")
#endif
#include <immintrin.h>

/* 64 aligned weights -> 24 bit columns: byte planes packed in k order,
 * then one shift + movemask per bit and half. */
static inline void fk_avx2_columns_simd(const uint32_t *walign, uint64_t col[FK_COLS])
{
    const __m256i byte = _mm256_set1_epi32(0xFF);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i v[8];
    for (int i = 0; i < 8; i++)
        v[i] = _mm256_loadu_si256((const __m256i *)(walign + 8 * i));
    for (int plane = 0; plane < FK_COLS / 8; plane++) {
        __m256i x[8], half[2];
        for (int i = 0; i < 8; i++)
            x[i] = _mm256_and_si256(_mm256_srli_epi32(v[i], 8 * plane), byte);
        for (int h = 0; h < 2; h++) {
            __m256i a = _mm256_packus_epi32(x[4 * h], x[4 * h + 1]);
            __m256i b = _mm256_packus_epi32(x[4 * h + 2], x[4 * h + 3]);
            half[h] = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(a, b), order);
        }
        for (int j = 0; j < 8; j++) {
            uint32_t lo = (uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(half[0], 7 - j));
            uint32_t hi = (uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(half[1], 7 - j));
            col[8 * plane + j] = (uint64_t)lo | ((uint64_t)hi << 32);
        }
    }
}

/* A full fp32 group: emax, per-pair alignment shifts (vpsrlvd gives 0 for
 * shifts >= 32), conditional negation, exact 64-bit products summed. */
static inline int64_t fk_avx2_group64(const int32_t *we, const int32_t *wa, const int32_t *wn,
                                      const int32_t *ae, const int32_t *am, int32_t *emax_out)
{
    __m256i e[8];
    __m256i m = _mm256_setzero_si256();
    for (int i = 0; i < 8; i++) {
        e[i] = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(we + 8 * i)),
                                _mm256_loadu_si256((const __m256i *)(ae + 8 * i)));
        m = _mm256_max_epi32(m, e[i]);
    }
    __m128i h = _mm_max_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
    h = _mm_max_epi32(h, _mm_shuffle_epi32(h, 0x4E));
    h = _mm_max_epi32(h, _mm_shuffle_epi32(h, 0xB1));
    int32_t emax = _mm_cvtsi128_si32(h);
    *emax_out = emax;
    __m256i vmax = _mm256_set1_epi32(emax);
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < 8; i++) {
        __m256i x = _mm256_srlv_epi32(_mm256_loadu_si256((const __m256i *)(wa + 8 * i)),
                                      _mm256_sub_epi32(vmax, e[i]));
        __m256i n = _mm256_loadu_si256((const __m256i *)(wn + 8 * i));
        __m256i xs = _mm256_sub_epi32(_mm256_xor_si256(x, n), n);
        __m256i a = _mm256_loadu_si256((const __m256i *)(am + 8 * i));
        acc = _mm256_add_epi64(acc, _mm256_mul_epi32(xs, a));
        acc = _mm256_add_epi64(acc, _mm256_mul_epi32(_mm256_srli_epi64(xs, 32),
                                                     _mm256_srli_epi64(a, 32)));
    }
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
    return _mm_cvtsi128_si64(s);
}

#define FK_GROUP64_SIMD fk_avx2_group64
#define FK_COLUMNS_SIMD fk_avx2_columns_simd
#define FK_NAME(x) fk_avx2_##x
#define FK_ISA_NAME "avx2"
#include "fast_kern.inc"
#undef FK_NAME
#undef FK_ISA_NAME
#undef FK_COLUMNS_SIMD
#undef FK_GROUP64_SIMD
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* ---- AVX-512 (F, BW, DQ, VL, CD) --------------------------------- */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target( \
    "avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx2,fma,bmi,bmi2,popcnt,lzcnt"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx2,fma,bmi,bmi2,popcnt,lzcnt")
#endif
/* 64 aligned weights -> 24 bit columns: a byte plane in one zmm (k order),
 * then one byte test per bit gives the 64-bit column. */
static inline void fk_avx512_columns_simd(const uint32_t *walign, uint64_t col[FK_COLS])
{
    __m512i v[4];
    for (int i = 0; i < 4; i++)
        v[i] = _mm512_loadu_si512((const void *)(walign + 16 * i));
    for (int plane = 0; plane < FK_COLS / 8; plane++) {
        __m128i b0 = _mm512_cvtepi32_epi8(_mm512_srli_epi32(v[0], 8 * plane));
        __m128i b1 = _mm512_cvtepi32_epi8(_mm512_srli_epi32(v[1], 8 * plane));
        __m128i b2 = _mm512_cvtepi32_epi8(_mm512_srli_epi32(v[2], 8 * plane));
        __m128i b3 = _mm512_cvtepi32_epi8(_mm512_srli_epi32(v[3], 8 * plane));
        __m512i p = _mm512_inserti64x2(_mm512_castsi128_si512(b0), b1, 1);
        p = _mm512_inserti64x2(p, b2, 2);
        p = _mm512_inserti64x2(p, b3, 3);
        for (int j = 0; j < 8; j++)
            col[8 * plane + j] = (uint64_t)_mm512_test_epi8_mask(p, _mm512_set1_epi8((char)(1 << j)));
    }
}

/* 8 columns' table walks in the 64-bit lanes of a zmm (gathers). */
static inline void fk_avx512_scan_lanes_simd(const uint64_t *cols, int n, int *steps)
{
    const __mmask8 valid = (__mmask8)((1u << n) - 1u);
    const __m512i c = _mm512_maskz_loadu_epi64(valid, cols);
    const __m512i limit = _mm512_set1_epi64(56), low15 = _mm512_set1_epi64(0x7FFF);
    const __m512i low16 = _mm512_set1_epi64(0xFFFF), low8 = _mm512_set1_epi64(0xFF);
    /* acc = position << 8 | steps; lanes past n start beyond the end */
    __m512i acc = _mm512_mask_blend_epi64(valid, _mm512_set1_epi64(64 << 8), _mm512_setzero_si512());
    for (int round = 0; round < 8; round++) {
        __m512i p = _mm512_srli_epi64(acc, 8);
        __mmask8 act = _mm512_cmple_epu64_mask(p, limit);
        if (!act)
            break;
        __m512i idx = _mm512_and_si512(_mm512_srlv_epi64(c, p), low15);
        __m256i t = _mm512_mask_i64gather_epi32(_mm256_setzero_si256(), act, idx,
                                                (const void *)fk_scan_tab, 2);
        acc = _mm512_mask_add_epi64(acc, act, acc, _mm512_and_si512(_mm512_cvtepu32_epi64(t), low16));
    }
    __m512i p = _mm512_srli_epi64(acc, 8);
    __mmask8 left = _mm512_cmple_epu64_mask(p, _mm512_set1_epi64(63));
    __m512i idx = _mm512_and_si512(_mm512_srlv_epi64(c, p), low8);
    __m256i tail = _mm512_mask_i64gather_epi32(_mm256_setzero_si256(), left, idx,
                                               (const void *)fk_scan_tail, 1);
    __m512i total = _mm512_add_epi64(_mm512_and_si512(acc, low8),
                                     _mm512_and_si512(_mm512_cvtepu32_epi64(tail), low8));
    int64_t out[8];
    _mm512_storeu_si512((void *)out, total);
    for (int l = 0; l < n; l++)
        steps[l] = (int)out[l];
}

/* (gathers measured slower than the scalar lanes: not used) */
/* A full fp32 group in four zmm (see fk_avx2_group64). */
static inline int64_t fk_avx512_group64(const int32_t *we, const int32_t *wa, const int32_t *wn,
                                        const int32_t *ae, const int32_t *am, int32_t *emax_out)
{
    __m512i e[4];
    for (int i = 0; i < 4; i++)
        e[i] = _mm512_add_epi32(_mm512_loadu_si512((const void *)(we + 16 * i)),
                                _mm512_loadu_si512((const void *)(ae + 16 * i)));
    __m512i m = _mm512_max_epi32(_mm512_max_epi32(e[0], e[1]), _mm512_max_epi32(e[2], e[3]));
    m = _mm512_max_epi32(m, _mm512_setzero_si512());
    int32_t emax = _mm512_reduce_max_epi32(m);
    *emax_out = emax;
    __m512i vmax = _mm512_set1_epi32(emax);
    __m512i acc = _mm512_setzero_si512();
    for (int i = 0; i < 4; i++) {
        __m512i x = _mm512_srlv_epi32(_mm512_loadu_si512((const void *)(wa + 16 * i)),
                                      _mm512_sub_epi32(vmax, e[i]));
        __m512i n = _mm512_loadu_si512((const void *)(wn + 16 * i));
        __m512i xs = _mm512_sub_epi32(_mm512_xor_si512(x, n), n);
        __m512i a = _mm512_loadu_si512((const void *)(am + 16 * i));
        acc = _mm512_add_epi64(acc, _mm512_mul_epi32(xs, a));
        acc = _mm512_add_epi64(acc, _mm512_mul_epi32(_mm512_srli_epi64(xs, 32),
                                                     _mm512_srli_epi64(a, 32)));
    }
    return _mm512_reduce_add_epi64(acc);
}

/* One scanner step of 8 columns: r = col >> p; the second 1 of the window
 * is the lowest 1 of r & (r - 1), capped at 8 by setting bit 8 (one
 * ternary-logic op); its index is 63 - lzcnt of the mask of bits up to it. */
static inline __m512i fk_avx512_scan_step(__m512i c, __m512i p)
{
    const __m512i one = _mm512_set1_epi64(1), bit8 = _mm512_set1_epi64(0x100);
    const __m512i k63 = _mm512_set1_epi64(63);
    __m512i r = _mm512_srlv_epi64(c, p);
    __m512i y = _mm512_ternarylogic_epi64(r, _mm512_sub_epi64(r, one), bit8, 0xEA); /* a&b|c */
    __m512i upto = _mm512_xor_si512(y, _mm512_sub_epi64(y, one));
    return _mm512_add_epi64(p, _mm512_sub_epi64(k63, _mm512_lzcnt_epi64(upto)));
}

/* S = max over the 24 columns of their steps, all columns walked in
 * lockstep one scanner step per round (3 zmm of 8 columns): a round
 * advances every p by the position of the second 1 of its window, or 8
 * (bit 8 is set below so the lowest remaining bit is found by lzcnt); S
 * is the number of rounds until every p > 63.  Columns already past 63
 * see an empty window and keep moving harmlessly. */
static inline int fk_avx512_scan_max(const uint64_t *col)
{
    const __m512i k63 = _mm512_set1_epi64(63), zero = _mm512_setzero_si512();
    __m512i c[3], p[3];
    for (int i = 0; i < 3; i++) {
        c[i] = _mm512_loadu_si512((const void *)(col + 8 * i));
        p[i] = zero;
    }
    int rounds = 0;
    for (;;) {
        __mmask8 live = _mm512_cmple_epu64_mask(p[0], k63) | _mm512_cmple_epu64_mask(p[1], k63) |
                        _mm512_cmple_epu64_mask(p[2], k63);
        if (!live)
            break;
        rounds++;
        for (int i = 0; i < 3; i++)
            p[i] = fk_avx512_scan_step(c[i], p[i]);
    }
    return rounds;
}

/* Two groups at once (6 independent chains hide the step latency). */
static inline void fk_avx512_scan_max2(const uint64_t *col_a, const uint64_t *col_b,
                                       int *s_a, int *s_b)
{
    const __m512i k63 = _mm512_set1_epi64(63), zero = _mm512_setzero_si512();
    __m512i c[6], p[6];
    for (int i = 0; i < 3; i++) {
        c[i] = _mm512_loadu_si512((const void *)(col_a + 8 * i));
        c[i + 3] = _mm512_loadu_si512((const void *)(col_b + 8 * i));
    }
    for (int i = 0; i < 6; i++)
        p[i] = zero;
    /* every column takes at least 8 steps (a step moves at most 8): the
     * first 8 rounds need no test */
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < 6; i++)
            p[i] = fk_avx512_scan_step(c[i], p[i]);
    }
    int ra = 8, rb = 8;
    for (;;) {
        __mmask8 la = _mm512_cmple_epu64_mask(p[0], k63) | _mm512_cmple_epu64_mask(p[1], k63) |
                      _mm512_cmple_epu64_mask(p[2], k63);
        __mmask8 lb = _mm512_cmple_epu64_mask(p[3], k63) | _mm512_cmple_epu64_mask(p[4], k63) |
                      _mm512_cmple_epu64_mask(p[5], k63);
        if (!(la | lb))
            break;
        ra += la != 0;
        rb += lb != 0;
        for (int i = 0; i < 6; i++)
            p[i] = fk_avx512_scan_step(c[i], p[i]);
    }
    *s_a = ra;
    *s_b = rb;
}

/* A full fp32 group with prune (see fk_avx512_group64) that also returns
 * the 24 bit columns of its aligned pruned weights, transposed straight
 * from the registers (byte planes, one byte test per bit). */
static inline int64_t fk_avx512_group64_cols(const int32_t *we, const int32_t *wa,
                                             const int32_t *wn, const int32_t *ae,
                                             const int32_t *am, uint32_t prune,
                                             int32_t *emax_out, uint64_t *col)
{
    __m512i e[4], x[4];
    for (int i = 0; i < 4; i++)
        e[i] = _mm512_add_epi32(_mm512_loadu_si512((const void *)(we + 16 * i)),
                                _mm512_loadu_si512((const void *)(ae + 16 * i)));
    __m512i m = _mm512_max_epi32(_mm512_max_epi32(e[0], e[1]), _mm512_max_epi32(e[2], e[3]));
    m = _mm512_max_epi32(m, _mm512_setzero_si512());
    int32_t emax = _mm512_reduce_max_epi32(m);
    *emax_out = emax;
    const __m512i vmax = _mm512_set1_epi32(emax), vprune = _mm512_set1_epi32((int)prune);
    __m512i acc = _mm512_setzero_si512();
    for (int i = 0; i < 4; i++) {
        x[i] = _mm512_and_si512(_mm512_srlv_epi32(_mm512_loadu_si512((const void *)(wa + 16 * i)),
                                                  _mm512_sub_epi32(vmax, e[i])), vprune);
        __m512i n = _mm512_loadu_si512((const void *)(wn + 16 * i));
        __m512i xs = _mm512_sub_epi32(_mm512_xor_si512(x[i], n), n);
        __m512i a = _mm512_loadu_si512((const void *)(am + 16 * i));
        acc = _mm512_add_epi64(acc, _mm512_mul_epi32(xs, a));
        acc = _mm512_add_epi64(acc, _mm512_mul_epi32(_mm512_srli_epi64(xs, 32),
                                                     _mm512_srli_epi64(a, 32)));
    }
    for (int plane = 0; plane < FK_COLS / 8; plane++) {
        __m512i p = _mm512_inserti64x2(
            _mm512_castsi128_si512(_mm512_cvtepi32_epi8(_mm512_srli_epi32(x[0], 8 * plane))),
            _mm512_cvtepi32_epi8(_mm512_srli_epi32(x[1], 8 * plane)), 1);
        p = _mm512_inserti64x2(p, _mm512_cvtepi32_epi8(_mm512_srli_epi32(x[2], 8 * plane)), 2);
        p = _mm512_inserti64x2(p, _mm512_cvtepi32_epi8(_mm512_srli_epi32(x[3], 8 * plane)), 3);
        for (int j = 0; j < 8; j++)
            col[8 * plane + j] = (uint64_t)_mm512_test_epi8_mask(p, _mm512_set1_epi8((char)(1 << j)));
    }
    return _mm512_reduce_add_epi64(acc);
}

#define FK_GROUP64_COLS_SIMD fk_avx512_group64_cols
#define FK_SCAN_MAX_SIMD fk_avx512_scan_max
#define FK_SCAN_MAX2_SIMD fk_avx512_scan_max2
#define FK_GROUP64_SIMD fk_avx512_group64
#define FK_COLUMNS_SIMD fk_avx512_columns_simd
#define FK_NAME(x) fk_avx512_##x
#define FK_ISA_NAME "avx512"
#include "fast_kern.inc"
#undef FK_NAME
#undef FK_ISA_NAME
#undef FK_COLUMNS_SIMD
#undef FK_GROUP64_SIMD
#undef FK_SCAN_MAX_SIMD
#undef FK_SCAN_MAX2_SIMD
#undef FK_GROUP64_COLS_SIMD
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const fk_ops_t *fk_ops_avx2(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") &&
        __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("fma"))
        return &fk_avx2_ops;
    return NULL;
}

const fk_ops_t *fk_ops_avx512(void)
{
    __builtin_cpu_init();
    if (fk_ops_avx2() != NULL && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd"))
        return &fk_avx512_ops;
    return NULL;
}

#else /* no x86 SIMD in this build */

const fk_ops_t *fk_ops_avx2(void)
{
    return NULL;
}

const fk_ops_t *fk_ops_avx512(void)
{
    return NULL;
}

#endif
