/*
 * fast_kern_scalar.c -- the portable kernels: fast_kern.inc compiled for the
 * build's baseline instruction set (whatever the compiler vectorises to:
 * SSE2 on x86-64, NEON on AArch64, plain scalar code elsewhere).
 */
#include "fast_internal.h"

#define FK_NAME(x) fk_scalar_##x
#define FK_ISA_NAME "scalar"
#include "fast_kern.inc"

const fk_ops_t *fk_ops_scalar(void)
{
    return &fk_scalar_ops;
}
