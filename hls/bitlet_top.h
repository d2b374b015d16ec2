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
 */
#ifndef BITLET_TOP_H
#define BITLET_TOP_H
#include <stdint.h>
#include "bitlet_hw.h"

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

#endif /* BITLET_TOP_H */
