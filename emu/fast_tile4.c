/*
 * fast_tile4.c -- results-only fp32 tiles for AVX-512, four output channels
 * at a time (fast_layer.c uses it when the avx512 / avx512v kernels are
 * selected, no cycle accounting is asked for, prune enables every column
 * and every group of the tile has 64 pairs).
 *
 * Why: with one group at a time (fast_kern.inc) a quarter of a group's
 * time went to the horizontal reductions (emax over 64 pairs, the int64
 * sum) and a sixth to the scalar truncating pack.  Here the activations
 * of one row are loaded once for four channels, the four groups' maxima
 * and sums are folded together, the four accumulators are packed in
 * vector lanes (fk_pack_fp32_inline, lane by lane) and added to the four
 * channels' binary32 sums in one vector addition, each lane in ascending
 * group order as the kernel adds them (IEEE RNE, subnormals kept: the
 * FP environment of fk_fpenv_enter).  Bit-exact with the other kernels
 * (tests/test_fast.py, tests/test_fast_host.py).
 *
 * Also here: fk_planar16_fp32, 16 channels x 16 pixels of planar fp32
 * activations (a GEMM's A [K, N]) unpacked (fk_unpack_act, F1) and
 * transposed to the layer's rows in vector registers.
 *
 * Built only on x86 with GCC or clang and without BITLET_FAST_NO_SIMD;
 * elsewhere neither is called (fk_tile4_usable returns 0).
 */
#include <string.h>

#include "fast_internal.h"

#if !defined(BITLET_FAST_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__))
#define FT_HAVE_X86 1
#endif

#ifdef FT_HAVE_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd")
#endif
#include <immintrin.h>

/* fk_pack_fp32_inline on four int64 accumulators with their emax. */
static inline __m128i ft_pack4(__m256i acc, __m256i emax)
{
    const __m256i zero = _mm256_setzero_si256();
    __mmask8 is_zero = _mm256_cmpeq_epi64_mask(acc, zero);
    __mmask8 neg = _mm256_cmplt_epi64_mask(acc, zero);
    __m256i sign = _mm256_maskz_mov_epi64(neg, _mm256_set1_epi64x(0x80000000LL));
    __m256i mag = _mm256_abs_epi64(acc);
    __m256i c = _mm256_sub_epi64(_mm256_set1_epi64x(63), _mm256_lzcnt_epi64(mag));
    __m256i E = _mm256_add_epi64(_mm256_sub_epi64(emax, _mm256_set1_epi64x(173)), c);
    __m256i k23 = _mm256_set1_epi64x(23);
    __mmask8 big = _mm256_cmpge_epi64_mask(c, k23);
    __m256i N = _mm256_mask_mov_epi64(
        _mm256_sllv_epi64(mag, _mm256_max_epi64(_mm256_sub_epi64(k23, c), zero)), big,
        _mm256_srlv_epi64(mag, _mm256_max_epi64(_mm256_sub_epi64(c, k23), zero)));
    N = _mm256_and_si256(N, _mm256_set1_epi64x(0xFFFFFF));
    /* E >= 1: normal; E > 254: Inf; else subnormal N >> (1 - E) (0 past 63) */
    __m256i normal = _mm256_or_si256(_mm256_slli_epi64(E, 23),
                                     _mm256_and_si256(N, _mm256_set1_epi64x(0x7FFFFF)));
    __m256i sub = _mm256_srlv_epi64(N, _mm256_sub_epi64(_mm256_set1_epi64x(1), E));
    __m256i mag32 = _mm256_mask_mov_epi64(sub, _mm256_cmpge_epi64_mask(E, _mm256_set1_epi64x(1)),
                                          normal);
    mag32 = _mm256_mask_mov_epi64(mag32, _mm256_cmpgt_epi64_mask(E, _mm256_set1_epi64x(254)),
                                  _mm256_set1_epi64x(0x7F800000));
    __m256i r = _mm256_maskz_mov_epi64((__mmask8)~is_zero, _mm256_or_si256(sign, mag32));
    return _mm256_cvtepi64_epi32(r);
}

/* v[0..3] folded with OP (a lane-wise max or add): 128-bit block q of out
 * holds OP over v[q]'s four blocks, lane by lane. */
#define FT_FOLD4(OP, v, out)                                                                  \
    do {                                                                                      \
        __m512i f01_ = OP(_mm512_shuffle_i64x2(v[0], v[1], 0x44),                             \
                          _mm512_shuffle_i64x2(v[0], v[1], 0xEE));                            \
        __m512i f23_ = OP(_mm512_shuffle_i64x2(v[2], v[3], 0x44),                             \
                          _mm512_shuffle_i64x2(v[2], v[3], 0xEE));                            \
        (out) = OP(_mm512_shuffle_i64x2(f01_, f23_, 0x88), _mm512_shuffle_i64x2(f01_, f23_, 0xDD)); \
    } while (0)

/* Four groups (channels c0..c0+3, the same 64 activations): acc and emax
 * of each, lane q. */
static inline void ft_group4(const int32_t *const we[4], const int32_t *const wa[4],
                             const int32_t *const wn[4], const __m512i ae[4],
                             const __m512i am[4], const __m512i amh[4], __m256i *acc_out,
                             __m256i *emax_out)
{
    __m512i e[4][4], m[4];
    for (int q = 0; q < 4; q++) {
        for (int i = 0; i < 4; i++)
            e[q][i] = _mm512_add_epi32(_mm512_loadu_si512((const void *)(we[q] + 16 * i)), ae[i]);
        m[q] = _mm512_max_epi32(_mm512_max_epi32(e[q][0], e[q][1]),
                                _mm512_max_epi32(e[q][2], e[q][3]));
    }
    /* the four maxima folded together: group q's in 128-bit block q */
    __m512i h;
    FT_FOLD4(_mm512_max_epi32, m, h);
    h = _mm512_max_epi32(h, _mm512_shuffle_epi32(h, (_MM_PERM_ENUM)0x4E));
    h = _mm512_max_epi32(h, _mm512_shuffle_epi32(h, (_MM_PERM_ENUM)0xB1));
    h = _mm512_max_epi32(h, _mm512_setzero_si512());          /* zero pairs: e >= 0 */
    __m512i acc[4];
    for (int q = 0; q < 4; q++) {
        __m512i vmax = _mm512_permutexvar_epi32(_mm512_set1_epi32(4 * q), h);
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        for (int i = 0; i < 4; i++) {
            __m512i x = _mm512_srlv_epi32(_mm512_loadu_si512((const void *)(wa[q] + 16 * i)),
                                          _mm512_sub_epi32(vmax, e[q][i]));
            __m512i n = _mm512_loadu_si512((const void *)(wn[q] + 16 * i));
            __m512i xs = _mm512_sub_epi32(_mm512_xor_si512(x, n), n);
            a0 = _mm512_add_epi64(a0, _mm512_mul_epi32(xs, am[i]));
            a1 = _mm512_add_epi64(a1, _mm512_mul_epi32(_mm512_srli_epi64(xs, 32), amh[i]));
        }
        acc[q] = _mm512_add_epi64(a0, a1);
    }
    __m512i t;
    FT_FOLD4(_mm512_add_epi64, acc, t);
    t = _mm512_add_epi64(t, _mm512_unpackhi_epi64(t, t));     /* sums in lanes 0, 2, 4, 6 */
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 0, 2, 4, 6);
    *acc_out = _mm512_castsi512_si256(_mm512_permutexvar_epi64(even, t));
    /* emax of group q in int32 lane 4 q: as int64 lanes */
    __m128i e4 = _mm512_castsi512_si128(_mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), h));
    *emax_out = _mm256_cvtepi32_epi64(e4);
}

/* Groups per pass: four channels' weights of FT_GROUPS groups (12 KiB)
 * stay in L1 while the tile's rows go by; each sum still adds its groups
 * in ascending order (the passes run in group order). */
#define FT_GROUPS 4

static void ft_tile(const fk_tile_t *t, int C4)
{
    const int ng = t->ng;
    for (int g0 = 0; g0 < ng; g0 += FT_GROUPS) {
        const int g1 = g0 + FT_GROUPS < ng ? g0 + FT_GROUPS : ng;
        for (int c = 0; c < C4; c += 4) {
            const int32_t *we[4], *wa[4], *wn[4];
            for (int r = 0; r < t->R; r++) {
                const int32_t *aer = t->ae + (int64_t)r * t->astride;
                const int32_t *amr = t->am + (int64_t)r * t->astride;
                const uint8_t *anan = t->anan + (int64_t)r * t->nan_stride;
                float *sums = t->sum_f + (int64_t)r * t->ldc + t->col0 + c;
                __m128 sum = _mm_loadu_ps(sums);
                for (int g = g0; g < g1; g++) {
                    int64_t off = (int64_t)g * FK_GROUP;
                    __m512i ae[4], am[4], amh[4];
                    for (int i = 0; i < 4; i++) {
                        ae[i] = _mm512_loadu_si512((const void *)(aer + off + 16 * i));
                        am[i] = _mm512_loadu_si512((const void *)(amr + off + 16 * i));
                        amh[i] = _mm512_srli_epi64(am[i], 32);
                    }
                    for (int q = 0; q < 4; q++) {
                        int64_t w = (int64_t)(c + q) * t->wstride + off;
                        we[q] = t->we + w;
                        wa[q] = t->wa + w;
                        wn[q] = t->wn + w;
                    }
                    __m256i acc, emax;
                    ft_group4(we, wa, wn, ae, am, amh, &acc, &emax);
                    __m128i v = ft_pack4(acc, emax);
                    /* an Inf/NaN operand in the group: the canonical NaN */
                    uint32_t nanq = 0;
                    for (int q = 0; q < 4; q++)
                        nanq |= (uint32_t)((anan[g] | t->wnan[(int64_t)(c + q) * ng + g]) != 0)
                                << q;
                    if (nanq)
                        v = _mm_mask_mov_epi32(v, (__mmask8)nanq,
                                               _mm_set1_epi32((int)BITLET_CANONICAL_NAN));
                    sum = _mm_add_ps(sum, _mm_castsi128_ps(v));
                }
                _mm_storeu_ps(sums, sum);
            }
        }
    }
}

#include "fast_avx512.h"        /* fk_avx512_t16 */

static int ft_planar16(const uint32_t *src, int64_t ld, int32_t *xe, int32_t *xm, uint8_t *xs,
                       int64_t cin)
{
    const __m512i k255 = _mm512_set1_epi32(0xFF), mant = _mm512_set1_epi32(0x7FFFFF);
    const __m512i hidden = _mm512_set1_epi32(0x800000), zero = _mm512_setzero_si512();
    __m512i e[16], m[16];
    __mmask16 special = 0;
    for (int c = 0; c < 16; c++) {        /* channel c of 16 pixels: unpack (F1) */
        __m512i w = _mm512_loadu_si512((const void *)(src + (int64_t)c * ld));
        __m512i ex = _mm512_and_si512(_mm512_srli_epi32(w, 23), k255);
        __m512i mn = _mm512_and_si512(w, mant);
        __mmask16 normal = _mm512_cmpneq_epi32_mask(ex, zero);
        __m512i aman = _mm512_mask_or_epi32(mn, normal, mn, hidden);
        /* exponent: e, or 1 for a subnormal (mant != 0), 0 for zero */
        e[c] = _mm512_mask_mov_epi32(
            _mm512_maskz_mov_epi32(_mm512_cmpneq_epi32_mask(mn, zero), _mm512_set1_epi32(1)),
            normal, ex);
        m[c] = _mm512_mask_sub_epi32(aman, _mm512_movepi32_mask(w), zero, aman);
        special |= _mm512_cmpeq_epi32_mask(ex, k255);
    }
    fk_avx512_t16(e);
    fk_avx512_t16(m);
    for (int i = 0; i < 16; i++) {        /* pixel i: its 16 channels */
        _mm512_storeu_si512((void *)(xe + (int64_t)i * cin), e[i]);
        _mm512_storeu_si512((void *)(xm + (int64_t)i * cin), m[i]);
        _mm_storeu_si128((__m128i *)(xs + (int64_t)i * cin),
                         _mm512_cvtepi32_epi8(_mm512_maskz_mov_epi32(
                             _mm512_cmpeq_epi32_mask(e[i], k255), _mm512_set1_epi32(1))));
    }
    return special != 0;
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif /* FT_HAVE_X86 */

int fk_planar16_fp32(const uint32_t *src, int64_t ld, int32_t *xe, int32_t *xm, uint8_t *xs,
                     int64_t cin)
{
#ifdef FT_HAVE_X86
    return ft_planar16(src, ld, xe, xm, xs, cin);
#else
    (void)src, (void)ld, (void)xe, (void)xm, (void)xs, (void)cin;
    return 0;
#endif
}

int fk_tile4_usable(const fk_ops_t *ops)
{
#ifdef FT_HAVE_X86
    return ops != NULL && strncmp(ops->name, "avx512", 6) == 0;
#else
    (void)ops;
    return 0;
#endif
}

int fk_tile4_fp32(const fk_tile_t *t)
{
#ifdef FT_HAVE_X86
    int C4 = t->C / 4 * 4;
    if (C4 > 0)
        ft_tile(t, C4);
    return C4;
#else
    (void)t;
    return 0;
#endif
}
