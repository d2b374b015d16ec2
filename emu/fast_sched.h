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
    uint32_t table;            /* its waves table (rows with the same oy
                                  and slot_lo share one)                  */
} fs_row_t;

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
    uint32_t n_tables;         /* distinct waves tables                    */
    uint64_t *table_row;       /* [n_tables] a row of each                 */
    uint32_t *tables;          /* [n_tables][fs_waves_size] or NULL         */
} fs_sched_t;

/* Batches and column classes of a validated instruction; 0 or -1 (memory). */
int fs_init(fs_sched_t *s, const bk_insn_t *d);
void fs_free(fs_sched_t *s);
/* The ring's windows and slots of every output row, in unit order, and
 * which rows share a waves table; 0 or -1 (memory). */
int fs_rows(fs_sched_t *s);
/* Number of uint32 in a row's waves table. */
static inline uint64_t fs_waves_size(const fs_sched_t *s)
{
    return (uint64_t)s->n_xcls * s->kinds * s->ng;
}
/* Waves of output row `row` (n * OH + oy): [n_xcls][kinds][ng]. */
void fs_row_waves(const fs_sched_t *s, uint64_t row, uint32_t *waves);
/* Allocate the tables (NULL if too large: then each task computes its
 * rows' waves with fs_row_waves) and fill table t (a parallel task). */
void fs_tables_alloc(fs_sched_t *s);
void fs_table_fill(fs_sched_t *s, uint32_t t);
/* The waves of a row: its shared table, or `scratch` filled now. */
static inline const uint32_t *fs_waves_of(const fs_sched_t *s, uint64_t row, uint32_t *scratch)
{
    if (s->tables != NULL)
        return s->tables + (uint64_t)s->rows[row].table * fs_waves_size(s);
    fs_row_waves(s, row, scratch);
    return scratch;
}
/* PE_CYCLES, KERNEL_CYCLES and DDR_BYTES from the compute-stage step sums
 * cp[(row * chunks + chunk) * nb + b] (without the per-unit LAT). */
void fs_totals(const fs_sched_t *s, const uint64_t *cp, uint64_t chunks, uint64_t insn_addr,
               bk_prof_t *p);

#endif /* BITLET_FAST_SCHED_H */
