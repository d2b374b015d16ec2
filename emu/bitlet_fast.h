/*
 * bitlet_fast.h -- the fast bit-exact emulator of the Bitlet kernel (emu/).
 *
 * Same arithmetic as the HLS reference (hls/bitlet_pe.c, hls/bitlet_kernel.c,
 * NUMERICS.md), with the kernel's control from hls/bitlet_ctl.h, organised
 * for speed: weights are converted to the PE port
 * format once per layer, activations once per layer, groups are evaluated
 * with vectorised integer arithmetic (exact int64 accumulation, truncating
 * pack, binary32 round-to-nearest-even group sums) on several threads.
 * Cycle accounting (S per group, the kernel cycle model of hls/README.md)
 * is computed only when asked for.
 *
 * Every constant comes from hls/bitlet_hw.h.  The text between CFFI-BEGIN
 * and CFFI-END is what sdk/bitlet/_fast_build.py exposes to Python.
 */
#ifndef BITLET_FAST_H
#define BITLET_FAST_H
#include <stdint.h>
#include "bitlet_hw.h"

/* CFFI-BEGIN */
/* One PE operation's observables; the same layout as bitlet_pe_result_t
 * (hls/bitlet_pe.h), checked by the tests. */
typedef struct {
    uint32_t res;
    int64_t  acc;
    int32_t  emax;
    int32_t  nan;
    int32_t  scan;
    int32_t  latency;
    uint8_t  col_steps[24];
} bitlet_fast_result_t;

/* Profile figures of one instruction (the BITLET_P_* fields of a profile
 * record; hls/README.md "Cycle model"). */
typedef struct {
    uint64_t pe_cycles;      /* PE-array cycles, kernel schedule          */
    uint64_t ref_cycles;     /* PE-array cycles, reference schedule       */
    uint64_t kernel_cycles;  /* whole instruction incl. DDR transfers     */
    uint64_t groups;         /* PE operations issued                      */
    uint64_t scan;           /* sum of S over all groups                  */
    uint64_t ddr_bytes;      /* bus bytes read + written in DDR           */
    uint64_t start, end;     /* clock at its start / end (modelled)       */
} bitlet_fast_prof_t;

/* Host views of one instruction's operands (device layouts of
 * bitlet_hw.h "Device memory layouts"); bias / acc only read when the
 * instruction's flags ask for them.  Host layouts other than the device's
 * (0 = the device layout; the results and the cycle model do not depend
 * on them, the model sees the device addresses):
 *   act_t > 0   activations planar: the device element of input pixel p
 *               ((n * IH + y) * IW + x) and channel c is at
 *               act[(IN_COFF + c) * act_t + p], act_t >= the pixels
 *               (a GEMM's A [K, N] as it is: act_t = N);
 *   out_t > 0   outputs planar likewise: output pixel p, channel co at
 *               out[(OUT_COFF + co) * out_t + p] (the GEMM's [M, N]);
 *   wgt_ld > 0  weight row co of the K tile at wgt + co * wgt_ld
 *               (elements); only its elements below K are read, so the
 *               rows need no zero padding (a [COUT, K] matrix, wgt
 *               pointing at column 64 * KG_BEGIN). */
typedef struct {
    const void *act;
    const void *wgt;
    const void *bias;
    const void *acc;
    void *out;
    int64_t act_t, out_t, wgt_ld;
} bitlet_fast_buffers_t;

/* Observables of n independent groups (arrays [n][64]), as
 * bitlet_pe_group_batch.  want_cycles = 0 skips the scanner (scan,
 * latency and col_steps are then 0).  Returns 0, or -1 without writing
 * anything if a fixed-mode group has quant > BITLET_QUANT_MAX. */
int bitlet_fast_group_batch(int64_t n, const uint8_t *w_sig, const uint8_t *w_exp,
                            const uint32_t *w_abs, const uint32_t *a_word,
                            const uint8_t *isfix, const uint32_t *prune,
                            const uint8_t *quant, bitlet_fast_result_t *out,
                            int want_cycles, int threads);

/* Steps of the check-window scanner over one 64-bit column (8..64), as the
 * layer kernels compute them (table driven, current ISA). */
int bitlet_fast_scan_steps(uint64_t col);

/* Run one layer: insn is one instruction (BITLET_INSN_WORDS words, its
 * device addresses used by the cycle model only; insn_addr: where it is
 * fetched from), the data are read from / written to the host buffers.
 * Validates the fields like the kernel does and returns a BITLET_STATUS_*
 * value (nothing is written unless BITLET_STATUS_OK; -1: out of host
 * memory).  prof may be NULL; when it is not, the cycle model is computed
 * (extra cost) and written to *prof (start = timestamp, end = start +
 * kernel_cycles).  threads <= 0: BITLET_THREADS or all CPUs. */
int bitlet_fast_layer(const uint32_t *insn, uint64_t insn_addr, const bitlet_fast_buffers_t *buf,
                      uint64_t timestamp, bitlet_fast_prof_t *prof, int threads);

/* The kernel top over a DDR arena, argument for argument bitlet_top()
 * (hls/bitlet_top.h), plus want_prof and threads.  want_prof = 0 skips
 * the cycle model (the results-only speed): profile records (prof_addr !=
 * 0) then hold the status and layer with zero counters, and the clock does
 * not advance (START = END = *clock = *timestamp).  want_prof = 1: every
 * counter, stamp and *clock as the kernel's in C simulation (*timestamp is
 * read once: stamps = *timestamp + the modelled cycles before them). */
void bitlet_fast_top(uint64_t *mem, uint64_t mem_base, uint32_t mem_size,
                     uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
                     const volatile uint64_t *timestamp, uint32_t *status,
                     uint32_t *insn_done, uint32_t *id_magic, uint32_t *id_version,
                     uint32_t *id_config, uint32_t *id_act_buf, uint32_t *id_wgt_buf,
                     uint32_t *id_out_buf, uint64_t *clock, int want_prof, int threads);

/* Engine configuration and introspection. */
int bitlet_fast_default_threads(void);   /* BITLET_THREADS, else CPUs; -1 bad env */
int bitlet_fast_max_threads(void);       /* CPUs the runtime sees                 */
const char *bitlet_fast_isa(void);       /* "avx512v", "avx512", "avx2", "scalar" */
int bitlet_fast_set_isa(const char *name); /* force an ISA ("scalar", ...): 0 ok  */
const char *bitlet_fast_threading(void); /* "openmp", "pthreads" or "none"        */
int bitlet_fast_simd_compiled(void);     /* 0 when built with BITLET_FAST_NO_SIMD */
/* CFFI-END */

#endif /* BITLET_FAST_H */
