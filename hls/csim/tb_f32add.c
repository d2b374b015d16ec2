/*
 * tb_f32add.c -- the kernel's integer binary32 adder (bk_f32_add in
 * bitlet_ctl.h) and its fixed-step format conversions against the host's
 * IEEE arithmetic (SSE/NEON float addition, round to nearest even,
 * subnormals kept: the testbench must not run with flush-to-zero).
 *
 *   1. edge cases: every pair of a list of special values (zeros, the
 *      smallest and largest subnormals and normals, Inf, NaN, values one
 *      ulp apart, halfway cases) with both signs;
 *   2. exhaustive over small exponents: all pairs of 2^12 values around the
 *      subnormal/normal boundary;
 *   3. random pairs (N_RANDOM, default 4 million): uniform bits, close
 *      exponents (cancellation) and mixed subnormal/normal;
 *   4. bk_fp16_to_fp32 on all 65536 binary16 values against the host's
 *      exact conversion by value.
 * A NaN result must be a NaN (payloads are not specified); anything else
 * must equal the host's bits.  Returns 0 on success, 1 on a mismatch.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitlet_ctl.h"

#ifndef N_RANDOM
#define N_RANDOM 4000000u
#endif

static long bad, checked;

static float f_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t u_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void check(uint32_t a, uint32_t b)
{
    volatile float fa = f_of(a), fb = f_of(b);
    uint32_t want = u_of(fa + fb), got = bk_f32_add(a, b);
    int ok = bk_is_nan(want) ? bk_is_nan(got) : got == want;
    checked++;
    if (!ok && bad++ < 10)
        printf("MISMATCH 0x%08X + 0x%08X: got 0x%08X want 0x%08X\n", a, b, got, want);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

int main(void)
{
    static const uint32_t special[] = {
        0x00000000u, 0x00000001u, 0x00000002u, 0x00000003u, 0x007FFFFFu, 0x007FFFFEu,
        0x00400000u, 0x00400001u, 0x00800000u, 0x00800001u, 0x00FFFFFFu, 0x01000000u,
        0x33800000u, 0x33800001u, 0x337FFFFFu, 0x34000000u, 0x3F800000u, 0x3F800001u,
        0x3F7FFFFFu, 0x3FFFFFFFu, 0x40000000u, 0x4B000000u, 0x4B000001u, 0x4B7FFFFFu,
        0x4B800000u, 0x7F000000u, 0x7F7FFFFFu, 0x7F7FFFFEu, 0x7F800000u, 0x7FC00000u,
        0x7F800001u, 0x7FFFFFFFu, 0x0C000000u, 0x4C000000u, 0x3FC00000u, 0x3EAAAAABu,
    };
    const uint32_t ns = sizeof special / sizeof special[0];
    uint32_t i, j, h;
    long bad16 = 0;
    for (i = 0; i < 2u * ns; i++)
        for (j = 0; j < 2u * ns; j++)
            check(special[i / 2u] | (i & 1u) << 31, special[j / 2u] | (j & 1u) << 31);
    for (i = 0; i < 4096u; i++)              /* exponents 0..1 and 24..25, both signs */
        for (j = 0; j < 4096u; j += 7u) {
            uint32_t a = ((i & 1u) << 31) | ((i >> 1) & 1u) << 23 | (i >> 2) * 4099u % 0x800000u;
            uint32_t b = ((j & 1u) << 31) | ((j >> 1) & 1u) << 23 | (j >> 2) * 8191u % 0x800000u;
            check(a, b);
            check(a + 0x0C000000u * ((j >> 3) & 1u), b);
        }
    for (i = 0; i < N_RANDOM; i++) {
        uint32_t a = rnd(), b = rnd(), mode = i & 3u;
        if (mode == 1u)                          /* close exponents: cancellation */
            b = (b & 0x807FFFFFu) | (((a >> 23) & 0xFFu) + (rnd() & 3u) - 1u) % 255u << 23;
        else if (mode == 2u)                     /* small magnitudes */
            a &= 0x81FFFFFFu, b &= 0x81FFFFFFu;
        else if (mode == 3u)                     /* one ulp apart, opposite signs */
            b = (a ^ 0x80000000u) + (rnd() & 1u);
        check(a, b);
    }
    for (h = 0; h < 65536u; h++) {               /* binary16 -> binary32 by value */
        uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, got = bk_fp16_to_fp32(h);
        float v;
        if (e == 0x1Fu)
            continue;                            /* Inf/NaN: bit pattern rule, below */
        v = ldexpf((float)(e ? (m | 0x400u) : m), (int)(e ? e : 1u) - 25);
        if (h & 0x8000u)
            v = -v;
        if (got != u_of(v) && bad16++ < 10)
            printf("MISMATCH fp16 0x%04X: got 0x%08X want 0x%08X\n", h, got, u_of(v));
    }
    bad16 += bk_fp16_to_fp32(0x7C00u) != 0x7F800000u || bk_fp16_to_fp32(0xFC00u) != 0xFF800000u
             || !bk_is_nan(bk_fp16_to_fp32(0x7E00u)) || !bk_is_nan(bk_fp16_to_fp32(0x7C01u));
    printf("bk_f32_add: %ld pairs, %ld mismatches; bk_fp16_to_fp32: 65536 values, %ld mismatches\n",
           checked, bad, bad16);
    printf("%s\n", bad || bad16 ? "FAIL" : "PASS");
    return bad || bad16 ? 1 : 0;
}
