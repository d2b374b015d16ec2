/*
 * fast_avx512.h -- AVX-512 helpers shared by the kernels (fast_kern_x86.c)
 * and the four-channel tiles (fast_tile4.c).  Include it inside a region
 * compiled for at least avx512f, after <immintrin.h>.
 */
#ifndef BITLET_FAST_AVX512_H
#define BITLET_FAST_AVX512_H

/* In-place transpose of 16x16 dwords: r[i] lane j -> r[j] lane i. */
FK_INLINE void fk_avx512_t16(__m512i r[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* u[4 a + m], 128-bit lane L: element 4 L + m of rows 4 a .. 4 a + 3 */
    for (int m = 0; m < 4; m++) {
        t[m] = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x88);       /* L = 0, 2 */
        t[4 + m] = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xDD);   /* L = 1, 3 */
        t[8 + m] = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x88);
        t[12 + m] = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xDD);
    }
    for (int m = 0; m < 4; m++) {
        r[m] = _mm512_shuffle_i32x4(t[m], t[8 + m], 0x88);           /* 4 L = 0  */
        r[8 + m] = _mm512_shuffle_i32x4(t[m], t[8 + m], 0xDD);       /* 4 L = 8  */
        r[4 + m] = _mm512_shuffle_i32x4(t[4 + m], t[12 + m], 0x88);  /* 4 L = 4  */
        r[12 + m] = _mm512_shuffle_i32x4(t[4 + m], t[12 + m], 0xDD); /* 4 L = 12 */
    }
}

#endif /* BITLET_FAST_AVX512_H */
