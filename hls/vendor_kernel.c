/*
 * vendor_kernel.c -- the datapath of the vendor-FP baseline top
 * (vendor_fp_top in bitlet_kernel.c, which shares the instruction machinery,
 * buffers, transfers, output stage and profile with bitlet_top): N_PE MAC
 * units, each VENDOR_LANES binary32 multiply-adds per cycle (unrolled lanes,
 * what Vitis HLS maps onto the vendor Floating-Point IP), computing every
 * dot product in this documented order (hls/README.md):
 *
 *   for one output value over the K tile [KG_BEGIN*64, KG_END*64)
 *   (k counted from the tile start, zero padded like the Bitlet kernel):
 *     p_k        = fl(w_k * a_k)                        binary32 RNE
 *     s[i]       = +0.0 for i in 0..P-1, P = BITLET_VENDOR_PARTIALS
 *     s[k mod P] = fl(s[k mod P] + p_k)                 ascending k
 *     tree:      P/2 sums s[i] = fl(s[2i] + s[2i+1]), repeated down to s[0]
 *     v          = fl(start + s[0]), start = ACC partial (FLAG_ACCUM) or +0.0
 *     then the shared output stage: + bias (binary32), ReLU, canonical NaN,
 *     RNE to a 16-bit OFMT.
 *
 * P = LANES * ADD_LAT: iteration i of the II=1 loop multiplies the LANES
 * elements k = LANES*i + l (l = 0..LANES-1) and adds each product into
 * s[k mod P] = s[LANES*(i mod ADD_LAT) + l]: a partial is written again
 * ADD_LAT iterations later, the adder latency (DEPENDENCE distance).
 * The start and bias adds are the shared integer output stage (bk_f32_add,
 * bitlet_ctl.h), which keeps subnormals; the FP operator's multiplies and
 * adds here are host float (C simulation) or the vendor IP (hardware).
 * No fused multiply-add anywhere: FP_CONTRACT is off here and the
 * reference is compiled with -ffp-contract=off.
 *
 * Fixed-point formats are not supported (STATUS_BAD_FIELD).
 */
#pragma STDC FP_CONTRACT OFF
#include <stdint.h>
#include "bitlet_hw.h"
#include "bitlet_top.h"

#if BITLET_VENDOR_PARTIALS != BITLET_VENDOR_LANES * BITLET_VENDOR_ADD_LAT
#error "BITLET_VENDOR_PARTIALS must equal LANES * ADD_LAT"
#endif
#if (1 << BITLET_VENDOR_TREE_DEPTH) != BITLET_VENDOR_PARTIALS
#error "BITLET_VENDOR_TREE_DEPTH must be log2(BITLET_VENDOR_PARTIALS)"
#endif
#if BITLET_VENDOR_ADD_LAT != 4
#error "the DEPENDENCE pragma below says distance=4: update it with VENDOR_ADD_LAT"
#endif
#if BITLET_GROUP % BITLET_VENDOR_PARTIALS != 0
#error "BITLET_VENDOR_PARTIALS must divide BITLET_GROUP"
#endif

void bk_vendor_clear(bk_vendor_acc_t *v)
{
    uint32_t p, i;
    for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS UNROLL
        for (i = 0; i < BITLET_VENDOR_PARTIALS; i++) {
#pragma HLS UNROLL
            v->s[p][i] = 0u;                           /* +0.0 */
        }
    }
}

typedef union { uint32_t u; float f; } bk_vfu_t;   /* the FP operator's view */

static float f_of(uint32_t u)
{
    bk_vfu_t x;
    x.u = u;
    return x.f;
}

static uint32_t u_of(float f)
{
    bk_vfu_t x;
    x.f = f;
    return x.u;
}

uint32_t bk_vendor_group(const uint32_t w[BITLET_N_PE][BITLET_GROUP],
                         const uint32_t a[BITLET_N_PE][BITLET_GROUP], uint32_t cnt,
                         bk_vendor_acc_t *v)
{
    float s[BITLET_N_PE][BITLET_VENDOR_PARTIALS];
#pragma HLS ARRAY_PARTITION variable=s type=complete dim=0
    uint32_t i, l, p, rot = 0, iters = 0;
    for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS UNROLL
        for (l = 0; l < BITLET_VENDOR_PARTIALS; l++) {
#pragma HLS UNROLL
            s[p][l] = f_of(v->s[p][l]);
        }
    }
    for (i = 0; i < BITLET_GROUP / BITLET_VENDOR_LANES; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS DEPENDENCE variable=s type=inter direction=RAW distance=4 dependent=true
        for (p = 0; p < BITLET_N_PE; p++) {            /* the N_PE units */
#pragma HLS UNROLL
            for (l = 0; l < BITLET_VENDOR_LANES; l++) {    /* the lanes */
#pragma HLS UNROLL
                uint32_t k = i * BITLET_VENDOR_LANES + l;
                uint32_t at = rot * BITLET_VENDOR_LANES + l;   /* k mod P */
                if (p < cnt) {
                    float prod = f_of(w[p][k]) * f_of(a[p][k]);
                    s[p][at] = s[p][at] + prod;
                }
            }
        }
        rot = rot + 1u == BITLET_VENDOR_ADD_LAT ? 0u : rot + 1u;  /* counter: i mod ADD_LAT */
        iters++;
    }
    for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS UNROLL
        for (l = 0; l < BITLET_VENDOR_PARTIALS; l++) {
#pragma HLS UNROLL
            v->s[p][l] = u_of(s[p][l]);
        }
    }
    return iters;
}

/* start + the pairwise tree of unit p: s[i] = s[2i] + s[2i+1], level by
 * level, then the start add (integer, bk_f32_add). */
uint32_t bk_vendor_finish(const bk_vendor_acc_t *v, uint32_t p, uint32_t start)
{
    float s[BITLET_VENDOR_PARTIALS];
#pragma HLS ARRAY_PARTITION variable=s type=complete dim=0
    uint32_t level, i;
    for (i = 0; i < BITLET_VENDOR_PARTIALS; i++) {
#pragma HLS UNROLL
        s[i] = f_of(v->s[p][i]);
    }
    for (level = 0; level < BITLET_VENDOR_TREE_DEPTH; level++) {
#pragma HLS UNROLL
        uint32_t width = BITLET_VENDOR_PARTIALS >> (level + 1u);  /* P/2, P/4, .., 1 */
        for (i = 0; i < BITLET_VENDOR_PARTIALS / 2u; i++) {     /* static bound */
#pragma HLS UNROLL
            if (i < width) {
                float x = s[2u * i];
                float y = s[2u * i + 1u];
                s[i] = x + y;
            }
        }
    }
    return bk_f32_add(start, u_of(s[0]));
}
