/*
 * bitlet_top.h -- prototypes of the two kernel tops (Bitlet and the vendor-FP
 * baseline).  Both implement the same ISA and register map (bitlet_hw.h).
 *
 * Arguments map to the s_axilite registers of bitlet_hw.h in this order
 * (`timestamp` is an ap_none input wire, no register).
 * `mem` is the m_axi port, BITLET_AXI_BYTES wide: 64-bit word i of it is the
 * device byte address mem_base + 8*i; mem_base and mem_size must be
 * multiples of BITLET_AXI_BYTES (else every run stops with
 * BITLET_STATUS_BUS_ERROR before the first fetch).  On a board the driver
 * writes MEM = MEM_BASE = the physical address of the program's own buffer
 * and MEM_SIZE = its size (drivers/kernel.py), so a run reaches nothing
 * outside that buffer; the simulator passes its arena window the same way.
 * Any access outside [mem_base, mem_base +
 * mem_size) stops the run with BITLET_STATUS_BUS_ERROR.  n_insn = 0 is a
 * valid run that only latches the ID registers (the driver's probe at open).
 * `timestamp`: a free-running cycle counter (block design), a pointer to a
 * volatile scalar so that the kernel reads the port at each stamp (ap_none:
 * a 64-bit input wire named `timestamp`); `clock`: its value at the end of
 * the run.  In C simulation the pointee is constant during a call and the
 * stamps are modelled: *timestamp + the modelled cycles before the stamp
 * (hls/README.md "Clock and stamps").
 *
 * Like the IP, each top is one instance: its on-chip buffers are static,
 * so a software caller must not run a top from two threads at once.
 */
#ifndef BITLET_TOP_H
#define BITLET_TOP_H
#include <stdint.h>
#include "bitlet_hw.h"
#include "bitlet_ctl.h"

/* Depth (64-bit words) of the m_axi port `mem` in the INTERFACE pragmas:
 * only C/RTL co-simulation uses it, which copies this many words of every
 * `mem` buffer a testbench passes; tb_kernel.c allocates at least this much.
 * It does not limit the board, where `mem` spans the whole address space. */
#ifndef BITLET_MAXI_DEPTH
#define BITLET_MAXI_DEPTH 524288
#endif

/* CFFI-BEGIN */
void bitlet_top(uint64_t *mem, uint64_t mem_base, uint32_t mem_size,
                uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
                const volatile uint64_t *timestamp,
                uint32_t *status, uint32_t *insn_done,
                uint32_t *id_magic, uint32_t *id_version, uint32_t *id_config,
                uint32_t *id_act_buf, uint32_t *id_wgt_buf, uint32_t *id_out_buf,
                uint64_t *clock);

/* The vendor-FP top has bitlet_top's argument list (one register map, one driver);
 * bitlet_kernel.c / vendor_kernel.c define them with these exact parameters. */
void vendor_fp_top(uint64_t *mem, uint64_t mem_base, uint32_t mem_size,
                   uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
                   const volatile uint64_t *timestamp,
                   uint32_t *status, uint32_t *insn_done,
                   uint32_t *id_magic, uint32_t *id_version, uint32_t *id_config,
                   uint32_t *id_act_buf, uint32_t *id_wgt_buf, uint32_t *id_out_buf,
                   uint64_t *clock);
/* CFFI-END */

/* ------------------------------------------------------------------ */
/* Internal API shared by the two tops (defined in bitlet_kernel.c and */
/* vendor_kernel.c; not exposed to Python).  See hls/README.md.        */
/* ------------------------------------------------------------------ */
void bk_run(int kind, uint64_t *mem, uint64_t mem_base, uint32_t mem_size,
            uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
            const volatile uint64_t *timestamp,
            uint32_t *status, uint32_t *insn_done, uint32_t *id_magic,
            uint32_t *id_version, uint32_t *id_config, uint32_t *id_act_buf,
            uint32_t *id_wgt_buf, uint32_t *id_out_buf, uint64_t *clock);

/* Vendor-FP datapath (vendor_kernel.c): the running partial sums of the
 * N_PE MAC units of one output pixel. */
typedef struct {
    uint32_t s[BITLET_N_PE][BITLET_VENDOR_PARTIALS];   /* binary32 bits */
} bk_vendor_acc_t;

void bk_vendor_clear(bk_vendor_acc_t *v);
/* One 64-group of every active unit: w, a [N_PE][64] binary32 words.
 * Returns the cycles (iterations of its II=1 loop: 64 / VENDOR_LANES). */
uint32_t bk_vendor_group(const uint32_t w[BITLET_N_PE][BITLET_GROUP],
                         const uint32_t a[BITLET_N_PE][BITLET_GROUP], uint32_t cnt,
                         bk_vendor_acc_t *v);
/* start + tree sum of unit p (binary32 bits). */
uint32_t bk_vendor_finish(const bk_vendor_acc_t *v, uint32_t p, uint32_t start);

#endif /* BITLET_TOP_H */
