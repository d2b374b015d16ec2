/*
 * bitlet_pe.h -- the Bitlet PE datapath (one 64-pair group), NUMERICS.md s.1-4.
 *
 * Port-level interface, exactly what the golden records drive:
 * weights already in the port format (sig, exp, abs) of NUMERICS.md s.2/s.3,
 * activations as raw 32-bit words, a mode, a 24-bit prune mask and quant.
 * Each call is independent (no state carried between groups: fix F5).
 */
#ifndef BITLET_PE_H
#define BITLET_PE_H
#include <stdint.h>
#include "bitlet_hw.h"

/* CFFI-BEGIN */
typedef struct {
    uint32_t res;            /* result word: fp32 bits, or fixed word (s.3)     */
    int64_t  acc;            /* exact accumulator sum_k afix_k*(walign_k&prune) */
    int32_t  emax;           /* fp32: max_k esum_k (fixed: 0)                   */
    int32_t  nan;            /* fp32: 1 if F3 gave 0x7FC00000 (Inf/NaN operand) */
    int32_t  scan;           /* S (s.4), 0 when prune = 0                       */
    int32_t  latency;        /* 24 + S (fp32) or 21 + S (fixed)                 */
    uint8_t  col_steps[24];  /* steps_g per bit column, 0 for pruned columns    */
} bitlet_pe_result_t;
/* CFFI-END */

/* ------------------------------------------------------------------ */
/* The PE as stages (the microarchitecture; hls/README.md "The PE      */
/* microarchitecture").  A kernel drives these; bitlet_pe_group is     */
/* their composition.  Not exposed to Python (outside the CFFI blocks: */
/* cffi's cdef cannot size arrays by the header's constants).          */
/* ------------------------------------------------------------------ */
/* Registers between the preprocess and the calculate stage. */
typedef struct {
    uint64_t col[BITLET_SIG_BITS];   /* bit column g: bit k = bit g of walign_k,
                                        0 for a pruned column                  */
    int32_t  act[BITLET_GROUP];      /* x_k, signed 25-bit; afix_k =            */
    uint64_t neg;                    /* (bit k ? -x_k : x_k): engines subtract  */
    uint32_t prune;                  /* 24-bit mask (enabled engines)           */
    uint16_t emax;                   /* fp32: max_k esum_k; fixed: 0            */
    uint8_t  isfix;                  /* 1: fixed mode                           */
    uint8_t  special;                /* fp32: an Inf/NaN operand (F3)           */
    uint8_t  quant;                  /* fixed mode: 0..24                       */
} bitlet_pe_pre_t;

/* Registers of the 24 column engines (the calculate stage). */
typedef struct {
    uint64_t col[BITLET_SIG_BITS];   /* the column each engine walks            */
    int32_t  act[BITLET_GROUP];      /* x_k held for the group                  */
    uint64_t neg;                    /* bit k: engines subtract x_k             */
    int32_t  sum[BITLET_SIG_BITS];   /* column sums (|sum| <= 2^30)             */
    uint8_t  ptr[BITLET_SIG_BITS];   /* window position; > 63: engine done      */
    uint8_t  steps[BITLET_SIG_BITS]; /* steps taken                             */
    uint32_t prune;
    uint16_t emax;
    uint8_t  isfix, special, quant;
} bitlet_pe_calc_t;

/* Preprocess: unpack, exponent maximum (a tree), alignment, the 24 bit
 * columns with the prune mask applied.  Returns -1 (pre untouched) if
 * isfix and quant > BITLET_QUANT_MAX, else 0. */
int bitlet_pe_preprocess(const uint8_t w_sig[64], const uint8_t w_exp[64],
                         const uint32_t w_abs[64], const uint32_t a_word[64],
                         int isfix, uint32_t prune, uint32_t quant,
                         bitlet_pe_pre_t *pre);
/* The cycle in which the engines take a preprocessed group. */
void bitlet_pe_load(const bitlet_pe_pre_t *pre, bitlet_pe_calc_t *c);
/* Nonzero while an enabled engine has steps left (before any step). */
int bitlet_pe_busy(const bitlet_pe_calc_t *c);
/* One clock of the 24 engines: each busy engine looks at its check window
 * of 8, selects the first 1 (priority encoder), adds that activation to its
 * column sum and moves its pointer.  Returns bitlet_pe_busy() after it. */
int bitlet_pe_step(bitlet_pe_calc_t *c);
/* Reassembly (sum of column sums shifted by column) and pack.  Fills res,
 * acc, emax, nan and col_steps; scan and latency are the caller's counted
 * cycles (bitlet_pe_group: the iterations of its step loop). */
void bitlet_pe_finish(const bitlet_pe_calc_t *c, bitlet_pe_result_t *r);

/* CFFI-BEGIN */

/* One PE operation.  isfix = 0: fp32 mode; 1: fixed mode (quant 0..24).
 * Returns 0, or -1 if quant is out of range in fixed mode (r untouched). */
int bitlet_pe_group(const uint8_t w_sig[64], const uint8_t w_exp[64],
                    const uint32_t w_abs[64], const uint32_t a_word[64],
                    int isfix, uint32_t prune, uint32_t quant,
                    bitlet_pe_result_t *r);

/* Weight word -> port format.  fp32: IEEE bits (s.2); fixed: sign<<31|abs. */
void bitlet_weight_port(uint32_t w_word, int isfix,
                        uint8_t *sig, uint8_t *exp, uint32_t *abs_);

/* Steps of the check-window scanner over one 64-bit column (s.4), 8..64. */
int bitlet_scan_steps(uint64_t col);

/* Batch helpers for the Python wrapper (n groups, arrays laid out [n][64];
 * isfix, prune, quant one per group).  Returns 0, or -1 without writing
 * anything if a fixed-mode group has quant > BITLET_QUANT_MAX. */
int bitlet_pe_group_batch(int64_t n, const uint8_t *w_sig, const uint8_t *w_exp,
                          const uint32_t *w_abs, const uint32_t *a_word,
                          const uint8_t *isfix, const uint32_t *prune,
                          const uint8_t *quant, bitlet_pe_result_t *out);
/* n weight words -> port format (bitlet_weight_port on each). */
void bitlet_weight_port_batch(int64_t n, const uint32_t *w_word, int isfix,
                              uint8_t *sig, uint8_t *exp, uint32_t *abs_);
/* CFFI-END */

#endif /* BITLET_PE_H */
