/*
 * bitlet_top.h -- prototypes of the two kernel tops (Bitlet and the vendor-FP
 * baseline).  Both implement the same ISA and register map (bitlet_hw.h).
 *
 * Arguments map to the s_axilite registers of bitlet_hw.h in this order.
 * `mem` is the m_axi port: word i of it is the device byte address
 * mem_base + 4*i.  On a board the driver writes MEM = 0 and MEM_BASE = 0,
 * so addresses are physical; the simulator passes its arena and its base.
 * Any access outside [mem_base, mem_base + mem_size) stops the run with
 * BITLET_STATUS_BUS_ERROR.  n_insn = 0 is a valid run that only latches
 * the ID registers (the driver's probe at open).
 *
 * Like the IP, each top is one instance: its on-chip buffers are static,
 * so a software caller must not run a top from two threads at once.
 */
#ifndef BITLET_TOP_H
#define BITLET_TOP_H
#include <stdint.h>
#include "bitlet_hw.h"

/* Depth (32-bit words) of the m_axi port `mem` in the INTERFACE pragmas:
 * only C/RTL co-simulation uses it, which copies this many words of every
 * `mem` buffer a testbench passes; tb_kernel.c allocates at least this much.
 * It does not limit the board, where `mem` spans the whole address space. */
#ifndef BITLET_MAXI_DEPTH
#define BITLET_MAXI_DEPTH 1048576
#endif

/* CFFI-BEGIN */
void bitlet_top(uint32_t *mem, uint64_t mem_base, uint32_t mem_size,
                uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
                uint32_t *status, uint32_t *insn_done,
                uint32_t *id_magic, uint32_t *id_version, uint32_t *id_config,
                uint32_t *id_act_buf, uint32_t *id_wgt_buf, uint32_t *id_out_buf);

void vendor_fp_top(uint32_t *mem, uint64_t mem_base, uint32_t mem_size,
                   uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
                   uint32_t *status, uint32_t *insn_done,
                   uint32_t *id_magic, uint32_t *id_version, uint32_t *id_config,
                   uint32_t *id_act_buf, uint32_t *id_wgt_buf, uint32_t *id_out_buf);
/* CFFI-END */

/* ------------------------------------------------------------------ */
/* Internal API shared by the two tops (defined in bitlet_kernel.c;    */
/* not exposed to Python).  See hls/README.md for the semantics.       */
/* ------------------------------------------------------------------ */
typedef struct {
    uint32_t op, wfmt, afmt, ofmt, flags, prune, quant, fixbits, layer;
    uint64_t act, wgt, bias, out, acc;
    uint32_t n, ih, iw, cin, cout, kh, kw;
    uint32_t sh, sw, pt, pl, pb, pr, dh, dw, groups, oh, ow;
    uint32_t out_cs, out_coff, in_cs, in_coff, kg_begin, kg_end;
    /* derived by bk_validate */
    uint32_t isfix, cin_g, cout_g, k, n_kg, kgb, kge;
} bk_insn_t;

typedef struct {
    uint64_t pe, ref, kernel, groups, scan, ddr;
    uint64_t lane[BITLET_N_PE];  /* Bitlet: issue cycles of each PE in this out row */
} bk_prof_t;

typedef struct {               /* the m_axi window (the pointer is passed apart) */
    uint64_t base;
    uint32_t size;
    uint64_t ddr;            /* bytes moved (read + written) so far */
} bk_bus_t;

/* One output pixel of one batch: accumulators in, accumulators out. */
typedef struct {
    float   f[BITLET_N_PE];  /* float modes: running binary32 sums      */
    int64_t i[BITLET_N_PE];  /* fixed mode: running exact int64 sums    */
} bk_accs_t;

void bk_run(int kind, uint32_t *mem, uint64_t mem_base, uint32_t mem_size,
            uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
            uint32_t *status, uint32_t *insn_done, uint32_t *id_magic,
            uint32_t *id_version, uint32_t *id_config, uint32_t *id_act_buf,
            uint32_t *id_wgt_buf, uint32_t *id_out_buf);
/* Activation group g (64 PE words) of channel group cg at output (oy, ox). */
void bk_gather(const bk_insn_t *d, uint32_t oy, uint32_t ox, uint32_t cg,
               uint32_t g, uint32_t a_vec[BITLET_GROUP]);
/* Weight word of row p (batch-relative), element j of the K tile. */
uint32_t bk_weight(const bk_insn_t *d, uint32_t p, uint32_t j);
float bk_bits_to_float(uint32_t u);
/* Vendor kernel: one pixel of a batch of cnt channels from c0. */
void vendor_pixel(const bk_insn_t *d, uint32_t oy, uint32_t ox, uint32_t c0,
                  uint32_t cnt, bk_accs_t *acc, bk_prof_t *prof);

#endif /* BITLET_TOP_H */
