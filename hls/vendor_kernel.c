/*
 * vendor_kernel.c -- the vendor-FP baseline kernel top: the same ISA,
 * register map and profile as bitlet_top, computing every dot product with
 * IEEE binary32 multiplies and adds (what Vitis HLS maps onto the vendor
 * Floating-Point IP), in this documented order (hls/README.md):
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
 * P = LANES * ADD_LAT: each of the LANES multiplier lanes feeds ADD_LAT
 * interleaved accumulators so the loop-carried add runs at II = 1.
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
#if BITLET_GROUP % BITLET_VENDOR_PARTIALS != 0
#error "BITLET_VENDOR_PARTIALS must divide BITLET_GROUP"
#endif

/* Sum the P partials pairwise, level by level: s[i] = s[2i] + s[2i+1]. */
static float tree_sum(float s[BITLET_VENDOR_PARTIALS])
{
    uint32_t level, i;
    for (level = 0; level < BITLET_VENDOR_TREE_DEPTH; level++) {
#pragma HLS UNROLL
        uint32_t width = BITLET_VENDOR_PARTIALS >> (level + 1u);  /* P/2, P/4, .., 1 */
        for (i = 0; i < BITLET_VENDOR_PARTIALS / 2u; i++) {     /* static bound */
#pragma HLS UNROLL
            if (i < width) {
                float a = s[2u * i];
                float b = s[2u * i + 1u];
                s[i] = a + b;
            }
        }
    }
    return s[0];
}

/* One 64-group of one channel into its partial sums. */
static void mac_group(const bk_insn_t *d, uint32_t p, uint32_t g,
                      const uint32_t a_vec[BITLET_GROUP], float s[BITLET_VENDOR_PARTIALS])
{
    uint32_t j;
    for (j = 0; j < BITLET_GROUP; j++) {
#pragma HLS PIPELINE II=1
        uint32_t k = (g - d->kgb) * BITLET_GROUP + j;
        float w = bk_bits_to_float(bk_weight(d, p, k));
        float a = bk_bits_to_float(a_vec[j]);
        float prod = w * a;
        uint32_t i = k % BITLET_VENDOR_PARTIALS;
        s[i] = s[i] + prod;
    }
}

void vendor_pixel(const bk_insn_t *d, uint32_t oy, uint32_t ox, uint32_t c0,
                  uint32_t cnt, bk_accs_t *acc, bk_prof_t *prof)
{
    static uint32_t a_vec[BITLET_GROUP];
    float s[BITLET_N_PE][BITLET_VENDOR_PARTIALS];
#pragma HLS ARRAY_PARTITION variable=s type=complete dim=0
    uint32_t p, g, i;
    for (p = 0; p < BITLET_N_PE; p++) {    /* static bounds: cnt <= N_PE */
        for (i = 0; i < BITLET_VENDOR_PARTIALS; i++)
            s[p][i] = 0.0f;
    }
    for (g = d->kgb; g < d->kge; g++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=64
        for (p = 0; p < BITLET_N_PE; p++) {    /* the N_PE MAC units, in lockstep */
            if (p >= cnt)
                continue;
            bk_gather(d, oy, ox, (c0 + p) / d->cout_g, g, a_vec);
            mac_group(d, p, g, a_vec, s[p]);
        }
        prof->pe += BITLET_GROUP / BITLET_VENDOR_LANES;
        prof->groups += cnt;
    }
    for (p = 0; p < BITLET_N_PE; p++) {
        if (p < cnt)
            acc->f[p] = acc->f[p] + tree_sum(s[p]);
    }
}

void vendor_fp_top(uint32_t *mem, uint64_t mem_base, uint32_t mem_size,
                   uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
                   uint32_t *status, uint32_t *insn_done,
                   uint32_t *id_magic, uint32_t *id_version, uint32_t *id_config,
                   uint32_t *id_act_buf, uint32_t *id_wgt_buf, uint32_t *id_out_buf)
{
#pragma HLS INTERFACE mode=m_axi port=mem offset=slave bundle=gmem depth=BITLET_MAXI_DEPTH max_read_burst_length=64 max_write_burst_length=64
#pragma HLS INTERFACE mode=s_axilite port=mem_base bundle=control
#pragma HLS INTERFACE mode=s_axilite port=mem_size bundle=control
#pragma HLS INTERFACE mode=s_axilite port=prog_addr bundle=control
#pragma HLS INTERFACE mode=s_axilite port=n_insn bundle=control
#pragma HLS INTERFACE mode=s_axilite port=prof_addr bundle=control
#pragma HLS INTERFACE mode=s_axilite port=status bundle=control
#pragma HLS INTERFACE mode=s_axilite port=insn_done bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_magic bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_version bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_config bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_act_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_wgt_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_out_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=return bundle=control
#pragma HLS INTERFACE mode=ap_ctrl_hs port=return
    bk_run(BITLET_KIND_VENDOR_FP, mem, mem_base, mem_size, prog_addr, n_insn, prof_addr,
           status, insn_done, id_magic, id_version, id_config, id_act_buf, id_wgt_buf,
           id_out_buf);
}
