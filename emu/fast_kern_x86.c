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

/* ---- S of 8 groups at once: the scanner as a bit-sliced automaton ------
 * The AVX2 twin of the AVX-512 automaton (fk_avx512_scan16, which
 * describes it): a 32-bit lane per group, 8 groups per ymm, and without
 * ternary logic each row takes 11 and-or-xor ops (j0 = ~j3 | hit through an
 * xor with all ones), each carry-save adder 5. */
typedef struct {
    __m256i j0, j1, j2, j3, c;
    __m256i ones, twos, fours, e0, e1, e2;
} fk_sa8_t;

/* One bit row b (row k of the 8 groups); returns the new-window events. */
FK_INLINE __m256i fk_avx2_sa_row(fk_sa8_t *s, __m256i b, int last)
{
    const __m256i all = _mm256_set1_epi32(-1);
    __m256i full = _mm256_andnot_si256(s->j2, s->j3);
    __m256i hit = _mm256_and_si256(b, s->c);              /* the window's second 1 */
    __m256i ev = last ? hit : _mm256_or_si256(hit, full);
    __m256i c = _mm256_or_si256(hit, _mm256_andnot_si256(full, _mm256_or_si256(b, s->c)));
    __m256i j0 = _mm256_xor_si256(_mm256_andnot_si256(hit, s->j3), all);
    s->j3 = _mm256_andnot_si256(hit, s->j2);
    s->j2 = _mm256_andnot_si256(hit, s->j1);
    s->j1 = _mm256_andnot_si256(hit, s->j0);
    s->j0 = j0;
    s->c = c;
    return ev;
}

#define FK_CSA8(hi, lo, a, b, c) do { __m256i a_ = (a), b_ = (b), c_ = (c); \
    __m256i u_ = _mm256_xor_si256(a_, b_); \
    (hi) = _mm256_or_si256(_mm256_and_si256(a_, b_), _mm256_and_si256(u_, c_)); \
    (lo) = _mm256_xor_si256(u_, c_); } while (0)

/* In-place transpose of 8x8 dwords: r[i] lane j -> r[j] lane i (its first
 * two stages are those of fk_avx512_t16 in 256-bit intrinsics, on purpose:
 * each family is compiled for its own target). */
FK_INLINE void fk_avx2_t8(__m256i r[8])
{
    __m256i t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* u[4 a + m], 128-bit lane L: element 4 L + m of rows 4 a .. 4 a + 3 */
    for (int m = 0; m < 4; m++) {
        r[m] = _mm256_permute2x128_si256(u[m], u[4 + m], 0x20);
        r[4 + m] = _mm256_permute2x128_si256(u[m], u[4 + m], 0x31);
    }
}

/* S of the 8 groups' rows (lane j: group j), rows nrows.. zero (nrows a
 * multiple of 8; see fk_avx512_scan16 for the zero tail). */
static inline __m256i fk_avx2_scan8(const uint32_t rows[8][FK_GROUP], int nrows)
{
    const __m256i zero = _mm256_setzero_si256();
    fk_sa8_t s;
    s.j0 = s.j1 = s.j2 = s.j3 = s.c = zero;
    s.ones = s.twos = s.fours = s.e0 = s.e1 = s.e2 = zero;
    for (int blk = 0; blk < nrows / 8; blk++) {
        __m256i r[8], e[8], ta, tb, fa, fb, ea;
        for (int j = 0; j < 8; j++)
            r[j] = _mm256_load_si256((const __m256i *)(rows[j] + 8 * blk));
        fk_avx2_t8(r);
        for (int i = 0; i < 8; i++)
            e[i] = fk_avx2_sa_row(&s, r[i], blk == FK_GROUP / 8 - 1 && i == 7);
        FK_CSA8(ta, s.ones, s.ones, e[0], e[1]);
        FK_CSA8(tb, s.ones, s.ones, e[2], e[3]);
        FK_CSA8(fa, s.twos, s.twos, ta, tb);
        FK_CSA8(ta, s.ones, s.ones, e[4], e[5]);
        FK_CSA8(tb, s.ones, s.ones, e[6], e[7]);
        FK_CSA8(fb, s.twos, s.twos, ta, tb);
        FK_CSA8(ea, s.fours, s.fours, fa, fb);
        __m256i carry = _mm256_and_si256(s.e0, ea);
        s.e2 = _mm256_xor_si256(s.e2, _mm256_and_si256(s.e1, carry));
        s.e1 = _mm256_xor_si256(s.e1, carry);
        s.e0 = _mm256_xor_si256(s.e0, ea);
    }
    if (nrows < FK_GROUP) {
        __m256i *plane_in[6] = { &s.ones, &s.twos, &s.fours, &s.e0, &s.e1, &s.e2 };
        __m256i carry = _mm256_or_si256(s.j0, s.j3);     /* d != 0 */
        for (int i = 0; i < 6; i++) {
            __m256i t = _mm256_and_si256(*plane_in[i], carry);
            *plane_in[i] = _mm256_xor_si256(*plane_in[i], carry);
            carry = t;
        }
    }
    const __m256i plane[6] = { s.ones, s.twos, s.fours, s.e0, s.e1, s.e2 };
    __m256i cand = _mm256_set1_epi32(-1);
    __m256i best = _mm256_set1_epi32(1 + (nrows < FK_GROUP ? (FK_GROUP - 8 - nrows) / 8 : 0));
    for (int i = 5; i >= 0; i--) {
        __m256i t = _mm256_and_si256(cand, plane[i]);
        __m256i none = _mm256_cmpeq_epi32(t, zero);         /* lanes keeping cand */
        cand = _mm256_blendv_epi8(t, cand, none);
        best = _mm256_add_epi32(best, _mm256_andnot_si256(none, _mm256_set1_epi32(1 << i)));
    }
    return best;
}

/* FK_SCAN_ROWS of fast_kern.inc: S of 8 groups' rows into S[8]. */
static void fk_avx2_scan_rows(const uint32_t rows[8][FK_GROUP], int nrows, uint32_t *S)
{
    _mm256_storeu_si256((__m256i *)S, fk_avx2_scan8(rows, nrows));
}

/* A full fp32 group with prune (see fk_avx2_group64) that also stores
 * its aligned pruned weights (rows) to walign. */
static inline int64_t fk_avx2_group64_rows(const int32_t *we, const int32_t *wa,
                                           const int32_t *wn, const int32_t *ae,
                                           const int32_t *am, uint32_t prune,
                                           int32_t *emax_out, uint32_t *walign)
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
    const __m256i vmax = _mm256_set1_epi32(emax), vprune = _mm256_set1_epi32((int)prune);
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < 8; i++) {
        __m256i x = _mm256_and_si256(_mm256_srlv_epi32(_mm256_loadu_si256((const __m256i *)(wa + 8 * i)),
                                                       _mm256_sub_epi32(vmax, e[i])), vprune);
        _mm256_store_si256((__m256i *)(walign + 8 * i), x);
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

#define FK_SCAN_ROWS fk_avx2_scan_rows
#define FK_SCAN_ROWS_GROUPS 8
#define FK_GROUP64_ROWS_SIMD fk_avx2_group64_rows
/* Two fp32 groups of two activation rows with the same 64 weights: each
 * weight vector is loaded once for both rows.  With walign0 (cycle
 * accounting) the aligned weights are pruned and stored, rows of the
 * second group at walign1. */
static inline void fk_avx2_group64x2_rows(const int32_t *we, const int32_t *wa,
                                          const int32_t *wn, const int32_t *ae0,
                                          const int32_t *am0, const int32_t *ae1,
                                          const int32_t *am1, uint32_t prune,
                                          int64_t acc_out[2], int32_t emax_out[2],
                                          uint32_t *walign0, uint32_t *walign1)
{
    __m256i m0 = _mm256_setzero_si256(), m1 = _mm256_setzero_si256();
    for (int i = 0; i < 8; i++) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(we + 8 * i));
        m0 = _mm256_max_epi32(m0, _mm256_add_epi32(w, _mm256_loadu_si256((const __m256i *)(ae0 + 8 * i))));
        m1 = _mm256_max_epi32(m1, _mm256_add_epi32(w, _mm256_loadu_si256((const __m256i *)(ae1 + 8 * i))));
    }
    /* both maxima at once: row 0 in the low 128 bits, row 1 in the high */
    __m256i h = _mm256_max_epi32(_mm256_permute2x128_si256(m0, m1, 0x20),
                                 _mm256_permute2x128_si256(m0, m1, 0x31));
    h = _mm256_max_epi32(h, _mm256_shuffle_epi32(h, 0x4E));
    h = _mm256_max_epi32(h, _mm256_shuffle_epi32(h, 0xB1));
    int32_t e0 = _mm256_cvtsi256_si32(h);
    int32_t e1 = _mm_cvtsi128_si32(_mm256_extracti128_si256(h, 1));
    emax_out[0] = e0;
    emax_out[1] = e1;
    const __m256i v0 = _mm256_set1_epi32(e0), v1 = _mm256_set1_epi32(e1);
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    for (int i = 0; i < 8; i++) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(we + 8 * i));
        __m256i a = _mm256_loadu_si256((const __m256i *)(wa + 8 * i));
        __m256i n = _mm256_loadu_si256((const __m256i *)(wn + 8 * i));
        __m256i x0 = _mm256_srlv_epi32(a, _mm256_sub_epi32(v0, _mm256_add_epi32(
            w, _mm256_loadu_si256((const __m256i *)(ae0 + 8 * i)))));
        __m256i x1 = _mm256_srlv_epi32(a, _mm256_sub_epi32(v1, _mm256_add_epi32(
            w, _mm256_loadu_si256((const __m256i *)(ae1 + 8 * i)))));
        if (walign0 != NULL) {
            const __m256i vprune = _mm256_set1_epi32((int)prune);
            x0 = _mm256_and_si256(x0, vprune);
            x1 = _mm256_and_si256(x1, vprune);
            _mm256_store_si256((__m256i *)(walign0 + 8 * i), x0);
            _mm256_store_si256((__m256i *)(walign1 + 8 * i), x1);
        }
        __m256i xs0 = _mm256_sub_epi32(_mm256_xor_si256(x0, n), n);
        __m256i xs1 = _mm256_sub_epi32(_mm256_xor_si256(x1, n), n);
        __m256i a0 = _mm256_loadu_si256((const __m256i *)(am0 + 8 * i));
        __m256i a1 = _mm256_loadu_si256((const __m256i *)(am1 + 8 * i));
        acc0 = _mm256_add_epi64(acc0, _mm256_mul_epi32(xs0, a0));
        acc1 = _mm256_add_epi64(acc1, _mm256_mul_epi32(xs1, a1));
        acc0 = _mm256_add_epi64(acc0, _mm256_mul_epi32(_mm256_srli_epi64(xs0, 32),
                                                       _mm256_srli_epi64(a0, 32)));
        acc1 = _mm256_add_epi64(acc1, _mm256_mul_epi32(_mm256_srli_epi64(xs1, 32),
                                                       _mm256_srli_epi64(a1, 32)));
    }
    /* both sums at once: row 0's lanes in the low half, row 1's in the high */
    __m256i s = _mm256_add_epi64(_mm256_permute2x128_si256(acc0, acc1, 0x20),
                                 _mm256_permute2x128_si256(acc0, acc1, 0x31));
    s = _mm256_add_epi64(s, _mm256_unpackhi_epi64(s, s));
    acc_out[0] = _mm_cvtsi128_si64(_mm256_castsi256_si128(s));
    acc_out[1] = _mm_cvtsi128_si64(_mm256_extracti128_si256(s, 1));
}

/* Results only (prune all ones): no rows stored. */
static inline void fk_avx2_group64x2(const int32_t *we, const int32_t *wa, const int32_t *wn,
                                     const int32_t *ae0, const int32_t *am0,
                                     const int32_t *ae1, const int32_t *am1,
                                     int64_t acc_out[2], int32_t emax_out[2])
{
    fk_avx2_group64x2_rows(we, wa, wn, ae0, am0, ae1, am1, FK_SIG_MASK, acc_out, emax_out,
                           NULL, NULL);
}

#define FK_GROUP64X2_SIMD fk_avx2_group64x2
#define FK_GROUP64X2_ROWS_SIMD fk_avx2_group64x2_rows
#define FK_GROUP64_SIMD fk_avx2_group64
#define FK_COLUMNS_SIMD fk_avx2_columns_simd
#define FK_NAME(x) fk_avx2_##x
#define FK_ISA_NAME "avx2"
#include "fast_kern.inc"
#undef FK_NAME
#undef FK_ISA_NAME
#undef FK_COLUMNS_SIMD
#undef FK_GROUP64_SIMD
#undef FK_GROUP64X2_SIMD
#undef FK_GROUP64X2_ROWS_SIMD
#undef FK_SCAN_ROWS
#undef FK_SCAN_ROWS_GROUPS
#undef FK_GROUP64_ROWS_SIMD
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

/* ---- S from a tight upper bound ------------------------------------
 *
 * Steps of a column = short moves (landing on the second 1 of a window, a
 * 1 q with its previous 1 at most 7 below: q in P = col & ones_below(col))
 * + jumps of 8.  Positions only grow, the last move starts at <= 63 and
 * moves <= 8, and a short move to q moves at least gap(q) = q - (previous
 * 1), so  sum_{short q} gap(q) + 8 * jumps <= 71.  Adding a q of P (gap <= 7)
 * to the short set never lowers  |short| + (71 - sum gap) / 8,  hence
 *     steps <= U = popcount(P) + floor((71 - G) / 8),  G = sum_{q in P} gap(q).
 * G is the number of bits in the runs [previous 1, q) of the q in P: the
 * runs are disjoint, so it is popcount(P - Pred) with Pred the 1s whose
 * next 1 is at most 7 above (the subtraction borrows exactly over them).
 * U is exact or one above for most columns, so S = max steps is found by
 * walking only the column with the largest U, and the columns whose U
 * exceeds the steps found (few): S stays exact whatever the bound's slack.
 * Used for single groups (fixed-mode weights, short groups); the layers'
 * fp32 groups take the 16-group automaton below. */

/* popcount of each 64-bit lane (nibble table, AVX512BW only). */
static inline __m512i fk_avx512_popcnt64(__m512i x)
{
    const __m512i lut = _mm512_set4_epi32(0x04030302, 0x03020201, 0x03020201, 0x02010100);
    const __m512i nib = _mm512_set1_epi8(0x0F);
    __m512i lo = _mm512_and_si512(x, nib);
    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), nib);
    __m512i cnt = _mm512_add_epi8(_mm512_shuffle_epi8(lut, lo), _mm512_shuffle_epi8(lut, hi));
    return _mm512_sad_epu8(cnt, _mm512_setzero_si512());
}

/* U of 8 columns (see above), 8..64 in each 64-bit lane. */
static inline __m512i fk_avx512_col_bounds(__m512i c)
{
    __m512i a = _mm512_or_si512(c, _mm512_slli_epi64(c, 1));
    __m512i b = _mm512_or_si512(a, _mm512_slli_epi64(a, 2));
    __m512i below = _mm512_slli_epi64(_mm512_or_si512(b, _mm512_slli_epi64(b, 3)), 1);
    __m512i a2 = _mm512_or_si512(c, _mm512_srli_epi64(c, 1));
    __m512i b2 = _mm512_or_si512(a2, _mm512_srli_epi64(a2, 2));
    __m512i above = _mm512_srli_epi64(_mm512_or_si512(b2, _mm512_srli_epi64(b2, 3)), 1);
    __m512i P = _mm512_and_si512(c, below);
    __m512i runs = _mm512_sub_epi64(P, _mm512_and_si512(c, above));
    __m512i jumps = _mm512_srli_epi64(
        _mm512_sub_epi64(_mm512_set1_epi64(FK_GROUP + BITLET_WINDOW - 1), fk_avx512_popcnt64(runs)), 3);
    return _mm512_add_epi64(fk_avx512_popcnt64(P), jumps);
}

/* Steps of one column, table walk (fk_scan_tab covers the steps starting
 * in 8 positions per lookup). */
static inline int fk_avx512_walk(uint64_t col)
{
    int p = 0, steps = 0;
    while (p <= FK_GROUP - BITLET_WINDOW) {
        uint32_t t = fk_scan_tab[(col >> p) & 0x7FFFu];
        steps += (int)(t & 0xFFu);
        p += (int)(t >> 8);
    }
    if (p <= FK_GROUP - 1)
        steps += fk_scan_tail[(col >> p) & 0xFFu];
    return steps;
}

/* The bounds of a group's 24 columns into U[24]; returns their max and
 * the columns reaching it (bit g). */
static inline int fk_avx512_bounds_of(__m512i u0, __m512i u1, __m512i u2, uint8_t *U,
                                      uint32_t *top)
{
    _mm_storel_epi64((__m128i *)U, _mm512_cvtepi64_epi8(u0));
    _mm_storel_epi64((__m128i *)(U + 8), _mm512_cvtepi64_epi8(u1));
    _mm_storel_epi64((__m128i *)(U + 16), _mm512_cvtepi64_epi8(u2));
    /* the max in every lane, without leaving the vector unit */
    __m512i vm = _mm512_max_epu64(_mm512_max_epu64(u0, u1), u2);
    vm = _mm512_max_epu64(vm, _mm512_shuffle_i64x2(vm, vm, 0x4E));
    vm = _mm512_max_epu64(vm, _mm512_shuffle_i64x2(vm, vm, 0xB1));
    vm = _mm512_max_epu64(vm, _mm512_shuffle_epi32(vm, (_MM_PERM_ENUM)0x4E));
    uint64_t umax = (uint64_t)_mm_cvtsi128_si64(_mm512_castsi512_si128(vm));
    *top = (uint32_t)_mm512_cmpeq_epu64_mask(u0, vm) |
           ((uint32_t)_mm512_cmpeq_epu64_mask(u1, vm) << 8) |
           ((uint32_t)_mm512_cmpeq_epu64_mask(u2, vm) << 16);
    return (int)umax;
}

static inline int fk_avx512_bounds(const uint64_t *col, uint8_t *U, uint32_t *top)
{
    return fk_avx512_bounds_of(fk_avx512_col_bounds(_mm512_loadu_si512((const void *)col)),
                               fk_avx512_col_bounds(_mm512_loadu_si512((const void *)(col + 8))),
                               fk_avx512_col_bounds(_mm512_loadu_si512((const void *)(col + 16))),
                               U, top);
}

/* S given the steps s of column g0 (one of the largest U): walk the other
 * columns that could still beat it. */
static inline int fk_avx512_finish(const uint64_t *col, const uint8_t *U, int umax, int g0, int s)
{
    for (int g = 0; g < FK_COLS && s < umax; g++) {
        if (g != g0 && U[g] > s) {
            int t = fk_avx512_walk(col[g]);
            s = t > s ? t : s;
        }
    }
    return s;
}

/* S of one group from its columns. */
static inline int fk_avx512_scan_max_of(const uint64_t *col, const uint8_t *U, int umax,
                                        uint32_t top)
{
    if (umax <= BITLET_WINDOW)
        return umax;
    int g0 = __builtin_ctz(top);
    return fk_avx512_finish(col, U, umax, g0, fk_avx512_walk(col[g0]));
}

static inline int fk_avx512_scan_max(const uint64_t *col)
{
    uint8_t U[FK_COLS];
    uint32_t top;
    int umax = fk_avx512_bounds(col, U, &top);
    return fk_avx512_scan_max_of(col, U, umax, top);
}

/* ---- S of 16 groups at once: the scanner as a bit-sliced automaton ------
 *
 * The check-window scanner of one column reads its bits in order k = 0..63
 * as a finite automaton: the state is d = k - p (bits of the window read so
 * far, 0..7) and c = whether the window already holds a 1.  Reading bit b:
 *   b & c (the window's second 1): a new window starts at k (it holds that
 *                                  1): d = 1, c = 1;
 *   else d = 7 (the window is full): a new window starts at k + 1: d = 0, c = 0;
 *   else d = d + 1, c = c | b;
 * and steps = 1 + the number of new windows that start at <= 63 (every new
 * window of the first kind, and of the second kind for k < 63).  Every bit
 * column of a group runs the same automaton on its own bits, so a 32-bit
 * word holds the state of a group's 24 columns (one bit each; bits 24..31
 * and pruned columns are zero columns: 8 steps, never above S), and the 16
 * dword lanes of a zmm 16 groups: row k of every lane is the aligned,
 * pruned weight k of its group, fed by 16x16 dword transposes of the
 * groups' 64 rows.  d is a 4-bit Johnson counter (j0 j1 j2 j3: 0000, 0001,
 * 0011, 0111, 1111, 1110, 1100, 1000 for d = 0..7; d + 1 shifts it: j0 =
 * ~j3, j(i+1) = j(i); full = j3 & ~j2), so one row is 7 ternary-logic ops.
 * The new-window events are added into bit-sliced counters (carry-save
 * adders, eight rows at a time), and the largest count over the bits of
 * a lane (bit-sliced maximum, from the top plane) gives S - 1.  Exact by
 * construction; tests/test_fast.py checks it against the reference on
 * adversarial columns (dense, sparse, runs, windows crossing bits 56..63,
 * prune masks). */

/* ternary-logic truth tables, arguments (a, b, c) */
#define FK_TL_EVENT 0xEA   /* a & b | c: second 1 (b & c) or full window    */
#define FK_TL_HAS1  0xD4   /* a & b | (a | b) & ~c: c of the next bit        */
#define FK_TL_J0    0x8F   /* ~a | b & c                                      */
#define FK_TL_JN    0x70   /* a & ~(b & c)                                    */
#define FK_TL_XOR3  0x96
#define FK_TL_MAJ   0xE8
#define FK_TL_XAND  0x78   /* a ^ (b & c)                                     */

typedef struct {
    __m512i j0, j1, j2, j3, c;            /* automaton (Johnson counter, c)  */
    __m512i ones, twos, fours, e0, e1, e2; /* event count, bit-sliced        */
} fk_sa_t;

/* One bit row b (row k of the 16 groups); returns the new-window events
 * (last: k = 63, where a full window's successor starts past the end). */
FK_INLINE __m512i fk_avx512_sa_row(fk_sa_t *s, __m512i b, int last)
{
    __m512i full = _mm512_andnot_si512(s->j2, s->j3);
    __m512i ev = last ? _mm512_and_si512(b, s->c)
                      : _mm512_ternarylogic_epi32(b, s->c, full, FK_TL_EVENT);
    __m512i c = _mm512_ternarylogic_epi32(b, s->c, full, FK_TL_HAS1);
    __m512i j0 = _mm512_ternarylogic_epi32(s->j3, b, s->c, FK_TL_J0);
    __m512i j1 = _mm512_ternarylogic_epi32(s->j0, b, s->c, FK_TL_JN);
    __m512i j2 = _mm512_ternarylogic_epi32(s->j1, b, s->c, FK_TL_JN);
    s->j3 = _mm512_ternarylogic_epi32(s->j2, b, s->c, FK_TL_JN);
    s->j2 = j2;
    s->j1 = j1;
    s->j0 = j0;
    s->c = c;
    return ev;
}

/* carry-save adder: a + b + c = 2 hi + lo, bitwise */
#define FK_CSA(hi, lo, a, b, c) do { __m512i a_ = (a), b_ = (b), c_ = (c); \
    (hi) = _mm512_ternarylogic_epi32(a_, b_, c_, FK_TL_MAJ); \
    (lo) = _mm512_ternarylogic_epi32(a_, b_, c_, FK_TL_XOR3); } while (0)

/* Eight rows r[0..7] (k = k0 .. k0 + 7) through the automaton, their
 * events into the counter (ones + 2 twos + 4 fours + 8 (e0 + 2 e1 + 4 e2)). */
FK_INLINE void fk_avx512_sa_rows8(fk_sa_t *s, const __m512i *r, int last_block)
{
    __m512i e[8], ta, tb, fa, fb, ea;
    for (int i = 0; i < 8; i++)
        e[i] = fk_avx512_sa_row(s, r[i], last_block && i == 7);
    FK_CSA(ta, s->ones, s->ones, e[0], e[1]);
    FK_CSA(tb, s->ones, s->ones, e[2], e[3]);
    FK_CSA(fa, s->twos, s->twos, ta, tb);
    FK_CSA(ta, s->ones, s->ones, e[4], e[5]);
    FK_CSA(tb, s->ones, s->ones, e[6], e[7]);
    FK_CSA(fb, s->twos, s->twos, ta, tb);
    FK_CSA(ea, s->fours, s->fours, fa, fb);
    /* at most 63 events: the eights fit in three bits */
    __m512i carry = _mm512_and_si512(s->e0, ea);
    s->e2 = _mm512_ternarylogic_epi32(s->e2, s->e1, carry, FK_TL_XAND);
    s->e1 = _mm512_xor_si512(s->e1, carry);
    s->e0 = _mm512_xor_si512(s->e0, ea);
}

#include "fast_avx512.h"        /* fk_avx512_t16 */

/* S of the 16 groups' rows (lane j: group j), as dwords; rows nrows..63
 * are zero (nrows a multiple of 16).  Zero rows hold no second 1, so from
 * row nrows on the windows start every 8 bits from the current window's
 * start nrows - d: (56 - nrows) / 8 more new windows when d = 0, one more
 * when d != 0 (j0 | j3), added without running them. */
static inline __m512i fk_avx512_scan16(const uint32_t rows[16][FK_GROUP], int nrows)
{
    const __m512i zero = _mm512_setzero_si512();
    fk_sa_t s;
    s.j0 = s.j1 = s.j2 = s.j3 = s.c = zero;
    s.ones = s.twos = s.fours = s.e0 = s.e1 = s.e2 = zero;
    for (int blk = 0; blk < nrows / 16; blk++) {
        __m512i r[16];
        for (int j = 0; j < 16; j++)
            r[j] = _mm512_load_si512((const void *)(rows[j] + 16 * blk));
        fk_avx512_t16(r);
        fk_avx512_sa_rows8(&s, r, 0);
        fk_avx512_sa_rows8(&s, r + 8, blk == FK_GROUP / 16 - 1);
    }
    if (nrows < FK_GROUP) {                 /* the zero tail's d != 0 window */
        __m512i *plane_in[6] = { &s.ones, &s.twos, &s.fours, &s.e0, &s.e1, &s.e2 };
        __m512i carry = _mm512_or_si512(s.j0, s.j3);
        for (int i = 0; i < 6; i++) {
            __m512i t = _mm512_and_si512(*plane_in[i], carry);
            *plane_in[i] = _mm512_xor_si512(*plane_in[i], carry);
            carry = t;
        }
    }
    /* the largest count of each lane: planes from the top, keeping the
     * bits (columns) that have the plane's bit while any does */
    const __m512i plane[6] = { s.ones, s.twos, s.fours, s.e0, s.e1, s.e2 };
    __m512i cand = _mm512_set1_epi32(-1);   /* steps = 1 + count (+ the tail's) */
    __m512i best = _mm512_set1_epi32(1 + (nrows < FK_GROUP ? (FK_GROUP - 8 - nrows) / 8 : 0));
    for (int i = 5; i >= 0; i--) {
        __m512i t = _mm512_and_si512(cand, plane[i]);
        __mmask16 any = _mm512_test_epi32_mask(t, t);
        cand = _mm512_mask_mov_epi32(cand, any, t);
        best = _mm512_mask_add_epi32(best, any, best, _mm512_set1_epi32(1 << i));
    }
    return best;
}

/* FK_SCAN_ROWS of fast_kern.inc: S of 16 groups' rows into S[16]. */
static void fk_avx512_scan_rows(const uint32_t rows[16][FK_GROUP], int nrows, uint32_t *S)
{
    _mm512_storeu_si512((void *)S, fk_avx512_scan16(rows, nrows));
}

/* Two fp32 groups with prune of two activation rows and the same 64
 * weights (fk_avx512_group64_rows twice, interleaved: each weight vector
 * is loaded once, the two dependency chains overlap). */
static inline void fk_avx512_group64x2_rows(const int32_t *we, const int32_t *wa,
                                            const int32_t *wn, const int32_t *ae0,
                                            const int32_t *am0, const int32_t *ae1,
                                            const int32_t *am1, uint32_t prune,
                                            int64_t acc_out[2], int32_t emax_out[2],
                                            uint32_t *walign0, uint32_t *walign1)
{
    __m512i e0[4], e1[4];
    for (int i = 0; i < 4; i++) {
        __m512i w = _mm512_loadu_si512((const void *)(we + 16 * i));
        e0[i] = _mm512_add_epi32(w, _mm512_loadu_si512((const void *)(ae0 + 16 * i)));
        e1[i] = _mm512_add_epi32(w, _mm512_loadu_si512((const void *)(ae1 + 16 * i)));
    }
    const __m512i zero = _mm512_setzero_si512();
    __m512i m0 = _mm512_max_epi32(_mm512_max_epi32(e0[0], e0[1]), _mm512_max_epi32(e0[2], e0[3]));
    __m512i m1 = _mm512_max_epi32(_mm512_max_epi32(e1[0], e1[1]), _mm512_max_epi32(e1[2], e1[3]));
    int32_t emax0 = _mm512_reduce_max_epi32(_mm512_max_epi32(m0, zero));
    int32_t emax1 = _mm512_reduce_max_epi32(_mm512_max_epi32(m1, zero));
    emax_out[0] = emax0;
    emax_out[1] = emax1;
    const __m512i v0 = _mm512_set1_epi32(emax0), v1 = _mm512_set1_epi32(emax1);
    const __m512i vprune = _mm512_set1_epi32((int)prune);
    __m512i acc0 = zero, acc1 = zero;
    for (int i = 0; i < 4; i++) {
        __m512i a = _mm512_loadu_si512((const void *)(wa + 16 * i));
        __m512i n = _mm512_loadu_si512((const void *)(wn + 16 * i));
        __m512i x0 = _mm512_and_si512(_mm512_srlv_epi32(a, _mm512_sub_epi32(v0, e0[i])), vprune);
        __m512i x1 = _mm512_and_si512(_mm512_srlv_epi32(a, _mm512_sub_epi32(v1, e1[i])), vprune);
        _mm512_store_si512((void *)(walign0 + 16 * i), x0);
        _mm512_store_si512((void *)(walign1 + 16 * i), x1);
        __m512i xs0 = _mm512_sub_epi32(_mm512_xor_si512(x0, n), n);
        __m512i xs1 = _mm512_sub_epi32(_mm512_xor_si512(x1, n), n);
        __m512i p0 = _mm512_loadu_si512((const void *)(am0 + 16 * i));
        __m512i p1 = _mm512_loadu_si512((const void *)(am1 + 16 * i));
        acc0 = _mm512_add_epi64(acc0, _mm512_mul_epi32(xs0, p0));
        acc1 = _mm512_add_epi64(acc1, _mm512_mul_epi32(xs1, p1));
        acc0 = _mm512_add_epi64(acc0, _mm512_mul_epi32(_mm512_srli_epi64(xs0, 32),
                                                       _mm512_srli_epi64(p0, 32)));
        acc1 = _mm512_add_epi64(acc1, _mm512_mul_epi32(_mm512_srli_epi64(xs1, 32),
                                                       _mm512_srli_epi64(p1, 32)));
    }
    acc_out[0] = _mm512_reduce_add_epi64(acc0);
    acc_out[1] = _mm512_reduce_add_epi64(acc1);
}

/* A full fp32 group with prune (see fk_avx512_group64) that also stores
 * its aligned pruned weights (rows) to walign. */
static inline int64_t fk_avx512_group64_rows(const int32_t *we, const int32_t *wa,
                                             const int32_t *wn, const int32_t *ae,
                                             const int32_t *am, uint32_t prune,
                                             int32_t *emax_out, uint32_t *walign)
{
    __m512i e[4];
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
        __m512i x = _mm512_and_si512(_mm512_srlv_epi32(_mm512_loadu_si512((const void *)(wa + 16 * i)),
                                                       _mm512_sub_epi32(vmax, e[i])), vprune);
        _mm512_store_si512((void *)(walign + 16 * i), x);
        __m512i n = _mm512_loadu_si512((const void *)(wn + 16 * i));
        __m512i xs = _mm512_sub_epi32(_mm512_xor_si512(x, n), n);
        __m512i a = _mm512_loadu_si512((const void *)(am + 16 * i));
        acc = _mm512_add_epi64(acc, _mm512_mul_epi32(xs, a));
        acc = _mm512_add_epi64(acc, _mm512_mul_epi32(_mm512_srli_epi64(xs, 32),
                                                     _mm512_srli_epi64(a, 32)));
    }
    return _mm512_reduce_add_epi64(acc);
}

#define FK_GROUP64_ROWS_SIMD fk_avx512_group64_rows
#define FK_SCAN_MAX_SIMD fk_avx512_scan_max
#define FK_GROUP64X2_ROWS_SIMD fk_avx512_group64x2_rows
#define FK_SCAN_ROWS fk_avx512_scan_rows
#define FK_SCAN_ROWS_GROUPS 16
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
#undef FK_SCAN_ROWS
#undef FK_SCAN_ROWS_GROUPS
#undef FK_GROUP64_ROWS_SIMD
#undef FK_GROUP64X2_ROWS_SIMD
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* ---- AVX-512 with VBMI, GFNI and VPOPCNTDQ (Ice Lake, Zen 4 and later) --
 * The same kernels (the helpers above are inlined here), plus: the 24
 * columns of a group from its aligned weights in 5 instructions a byte
 * plane (two-source byte permutes gather plane bytes, rows reversed per
 * 8; GF2P8AFFINEQB transposes each 8x8 bit block; one byte permute puts
 * column j's bytes in qword j) and per-lane popcounts for the bounds
 * (single-group S: fixed-mode weights, short groups; the layers' fp32
 * groups take the automaton above). */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target( \
    "avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx512vbmi,avx512vpopcntdq,gfni," \
    "avx2,fma,bmi,bmi2,popcnt,lzcnt"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx512vbmi,avx512vpopcntdq,gfni," \
                   "avx2,fma,bmi,bmi2,popcnt,lzcnt")
#endif

/* byte q = 8 b + t of plane p's gather: byte p of value 8 b + 7 - t
 * (mod 32: the low and high halves of the 64 values come from two pairs
 * of registers); then column j's byte b is byte 8 b + j. */
static const uint8_t fk_gfni_gather[3][64] = {
#define FK_G(p, q) (uint8_t)((((8 * ((q) / 8) + 7 - (q) % 8) % 32) * 4) + (p))
#define FK_G8(p, q) FK_G(p, q), FK_G(p, q + 1), FK_G(p, q + 2), FK_G(p, q + 3), \
    FK_G(p, q + 4), FK_G(p, q + 5), FK_G(p, q + 6), FK_G(p, q + 7)
#define FK_GP(p) { FK_G8(p, 0), FK_G8(p, 8), FK_G8(p, 16), FK_G8(p, 24), \
    FK_G8(p, 32), FK_G8(p, 40), FK_G8(p, 48), FK_G8(p, 56) }
    FK_GP(0), FK_GP(1), FK_GP(2)
#undef FK_GP
#undef FK_G8
#undef FK_G
};
static const uint8_t fk_gfni_cols[64] = {
    0, 8, 16, 24, 32, 40, 48, 56, 1, 9, 17, 25, 33, 41, 49, 57,
    2, 10, 18, 26, 34, 42, 50, 58, 3, 11, 19, 27, 35, 43, 51, 59,
    4, 12, 20, 28, 36, 44, 52, 60, 5, 13, 21, 29, 37, 45, 53, 61,
    6, 14, 22, 30, 38, 46, 54, 62, 7, 15, 23, 31, 39, 47, 55, 63,
};

/* 64 aligned weights in 4 zmm (value k in lane k % 16 of x[k / 16]) ->
 * the 24 columns, stored to col. */
static inline void fk_avx512v_columns_regs(const __m512i x[4], uint64_t col[FK_COLS])
{
    const __m512i unit = _mm512_set1_epi64(0x8040201008040201LL);  /* byte m: 1 << m */
    const __m512i to_cols = _mm512_loadu_si512((const void *)fk_gfni_cols);
    for (int plane = 0; plane < FK_COLS / 8; plane++) {
        __m512i idx = _mm512_loadu_si512((const void *)fk_gfni_gather[plane]);
        __m512i lo = _mm512_permutex2var_epi8(x[0], idx, x[1]);
        __m512i hi = _mm512_permutex2var_epi8(x[2], idx, x[3]);
        __m512i d = _mm512_mask_blend_epi8(0xFFFFFFFF00000000ULL, lo, hi);
        __m512i t = _mm512_gf2p8affine_epi64_epi8(unit, d, 0);
        _mm512_storeu_si512((void *)(col + 8 * plane), _mm512_permutexvar_epi8(to_cols, t));
    }
}

static inline void fk_avx512v_columns_simd(const uint32_t *walign, uint64_t col[FK_COLS])
{
    __m512i x[4];
    for (int i = 0; i < 4; i++)
        x[i] = _mm512_loadu_si512((const void *)(walign + 16 * i));
    fk_avx512v_columns_regs(x, col);
}

static inline __m512i fk_avx512v_col_bounds(__m512i c)
{
    __m512i a = _mm512_or_si512(c, _mm512_slli_epi64(c, 1));
    __m512i b = _mm512_or_si512(a, _mm512_slli_epi64(a, 2));
    __m512i below = _mm512_slli_epi64(_mm512_or_si512(b, _mm512_slli_epi64(b, 3)), 1);
    __m512i a2 = _mm512_or_si512(c, _mm512_srli_epi64(c, 1));
    __m512i b2 = _mm512_or_si512(a2, _mm512_srli_epi64(a2, 2));
    __m512i above = _mm512_srli_epi64(_mm512_or_si512(b2, _mm512_srli_epi64(b2, 3)), 1);
    __m512i P = _mm512_and_si512(c, below);
    __m512i runs = _mm512_sub_epi64(P, _mm512_and_si512(c, above));
    __m512i jumps = _mm512_srli_epi64(
        _mm512_sub_epi64(_mm512_set1_epi64(FK_GROUP + BITLET_WINDOW - 1), _mm512_popcnt_epi64(runs)), 3);
    return _mm512_add_epi64(_mm512_popcnt_epi64(P), jumps);
}

static inline int fk_avx512v_bounds(const uint64_t *col, uint8_t *U, uint32_t *top)
{
    return fk_avx512_bounds_of(fk_avx512v_col_bounds(_mm512_loadu_si512((const void *)col)),
                               fk_avx512v_col_bounds(_mm512_loadu_si512((const void *)(col + 8))),
                               fk_avx512v_col_bounds(_mm512_loadu_si512((const void *)(col + 16))),
                               U, top);
}

static inline int fk_avx512v_scan_max(const uint64_t *col)
{
    uint8_t U[FK_COLS];
    uint32_t top;
    int umax = fk_avx512v_bounds(col, U, &top);
    return fk_avx512_scan_max_of(col, U, umax, top);
}

#define FK_GROUP64_ROWS_SIMD fk_avx512_group64_rows
#define FK_SCAN_MAX_SIMD fk_avx512v_scan_max
#define FK_GROUP64X2_ROWS_SIMD fk_avx512_group64x2_rows
#define FK_SCAN_ROWS fk_avx512_scan_rows
#define FK_SCAN_ROWS_GROUPS 16
#define FK_GROUP64_SIMD fk_avx512_group64
#define FK_COLUMNS_SIMD fk_avx512v_columns_simd
#define FK_NAME(x) fk_avx512v_##x
#define FK_ISA_NAME "avx512v"
#include "fast_kern.inc"
#undef FK_NAME
#undef FK_ISA_NAME
#undef FK_COLUMNS_SIMD
#undef FK_GROUP64_SIMD
#undef FK_SCAN_MAX_SIMD
#undef FK_SCAN_ROWS
#undef FK_SCAN_ROWS_GROUPS
#undef FK_GROUP64_ROWS_SIMD
#undef FK_GROUP64X2_ROWS_SIMD
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

/* AVX-512 plus VBMI, GFNI and VPOPCNTDQ. */
const fk_ops_t *fk_ops_avx512v(void)
{
    __builtin_cpu_init();
    if (fk_ops_avx512() != NULL && __builtin_cpu_supports("avx512vbmi") &&
        __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("gfni"))
        return &fk_avx512v_ops;
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

const fk_ops_t *fk_ops_avx512v(void)
{
    return NULL;
}

#endif
