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
#define FK_NAME(x) fk_avx2_##x
#define FK_ISA_NAME "avx2"
#include "fast_kern.inc"
#undef FK_NAME
#undef FK_ISA_NAME
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
#define FK_NAME(x) fk_avx512_##x
#define FK_ISA_NAME "avx512"
#include "fast_kern.inc"
#undef FK_NAME
#undef FK_ISA_NAME
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
