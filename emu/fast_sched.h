/*
 * fast_sched.h -- the fast engine's cycle model (fast_sched.c): per-unit
 * sums of the kernel's schedule from geometry and per-group S.
 */
#ifndef BITLET_FAST_SCHED_H
#define BITLET_FAST_SCHED_H
#include <stdint.h>
#include "bitlet_ctl.h"

/* One output row (n, oy) of the line buffer. */
typedef struct {
    int64_t lo, hi;            /* its window of input rows                */
    int64_t first;             /* rows [first, hi) are read for it        */
    uint32_t slot_lo;          /* ring slot of row lo                     */
} fs_row_t;

/* The kernel's ring state (bk_ring_t of hls/bitlet_kernel.c). */
typedef struct {
    uint32_t q, wp;
    int64_t lo, hi;
    uint32_t slot_lo;
    uint32_t n;
} fs_ring_t;

typedef struct {
    const bk_insn_t *d;
    uint32_t nb, ng, lat, q;
    uint32_t *b_c0, *b_cnt;    /* [nb] the batches' channels               */
    uint8_t *b_kind;           /* [nb] index into kind_ncg                 */
    uint32_t kind_ncg[2], kinds;
    uint32_t *xcls;            /* [ow] column class of each output pixel   */
    uint32_t *xrep;            /* [n_xcls] a pixel of each class           */
    uint32_t n_xcls;
    uint64_t row_slots;        /* N * OH                                   */
    fs_row_t *rows;            /* [N * OH]                                 */
} fs_sched_t;

/* Batches and column classes of a validated instruction; 0 or -1 (memory). */
int fs_init(fs_sched_t *s, const bk_insn_t *d);
void fs_free(fs_sched_t *s);
/* The ring's windows and slots of every output row, in unit order. */
void fs_rows(fs_sched_t *s);
/* Waves of output row `row` (n * OH + oy): [n_xcls][kinds][ng]. */
void fs_row_waves(const fs_sched_t *s, uint64_t row, uint32_t *waves);
/* Number of uint32 in a row's waves table. */
static inline uint64_t fs_waves_size(const fs_sched_t *s)
{
    return (uint64_t)s->n_xcls * s->kinds * s->ng;
}
/* PE_CYCLES, KERNEL_CYCLES and DDR_BYTES from the compute-stage step sums
 * cp[(row * chunks + chunk) * nb + b] (without the per-unit LAT). */
void fs_totals(const fs_sched_t *s, const uint64_t *cp, uint64_t chunks, uint64_t insn_addr,
               bk_prof_t *p);

#endif /* BITLET_FAST_SCHED_H */
