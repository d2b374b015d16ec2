/*
 * fast_sched.c -- the cycle model of the kernel (hls/README.md "Cycle
 * model") from the layer geometry and the S of every group, as the fast
 * engine computes it: the same figures hls/bitlet_kernel.c counts loop
 * iteration by loop iteration, here in closed form per unit.
 *
 * What is shared with the kernel (hls/bitlet_ctl.h, one copy): batches,
 * resident weights, the overlap rule, the line-buffer window and ring
 * slots and the ring's bookkeeping, gather waves (bk_waves), beats / burst
 * cycles / edge beats of a run (a stage's runs form one sequence: the DDR
 * latency once, then each run's bk_run_cycles).  What is here: the sums over units.
 *
 * Waves of a step depend on the output pixel only through which kernel
 * columns kw are inside the image (every element's line-buffer word moves
 * by the same sw * CIN when ox moves by one, which rotates the bank
 * histogram and keeps its maximum), and on the batch only through its
 * number of channel groups (the channel group moves every word by
 * cin_g): so they are computed once per (output row, column class,
 * channel-group count, group) with bk_waves and looked up per step (as
 * max(waves, the 64 / WGT_BANKS weight reads): what a step costs at least
 * besides 1 + max S).  Rows
 * with the same oy and the same ring slot of their first row (e.g. the
 * same row of every image of a batch) have the same table, computed once.
 */
#include <stdlib.h>
#include <string.h>

#include "fast_sched.h"

/* ------------------------------------------------------------------ */
/* per instruction                                                     */
/* ------------------------------------------------------------------ */

int fs_init(fs_sched_t *s, const bk_insn_t *d)
{
    uint32_t b, ox, kinds = 0;
    memset(s, 0, sizeof(*s));
    s->d = d;
    s->nb = bk_n_batches(d);
    s->ng = d->kge - d->kgb;
    s->lat = d->isfix ? BITLET_LAT_FIXED : BITLET_LAT_FP32;
    s->b_c0 = (uint32_t *)calloc(s->nb, sizeof(uint32_t));
    s->b_cnt = (uint32_t *)calloc(s->nb, sizeof(uint32_t));
    s->b_kind = (uint8_t *)calloc(s->nb, 1);
    s->xcls = (uint32_t *)calloc(d->ow, sizeof(uint32_t));
    s->xrep = (uint32_t *)calloc(d->ow, sizeof(uint32_t));
    if (!s->b_c0 || !s->b_cnt || !s->b_kind || !s->xcls || !s->xrep) {
        fs_free(s);
        return -1;
    }
    /* batches and their channel-group counts (at most two distinct: the
     * full batches and a last partial one) */
    for (b = 0; b < s->nb; b++) {
        uint32_t cg0, ncg, k;
        bk_batch_channels(d, b, &s->b_c0[b], &s->b_cnt[b]);
        bk_batch_cgs(d, s->b_c0[b], s->b_cnt[b], &cg0, &ncg);
        for (k = 0; k < kinds && s->kind_ncg[k] != ncg; k++)
            ;
        if (k == kinds)
            s->kind_ncg[kinds++] = ncg;
        s->b_kind[b] = (uint8_t)k;
    }
    s->kinds = kinds;
    /* column classes: the range of kernel columns inside the image, which
     * only shrinks at the edges as ox grows (classes are runs of ox) */
    {
        int64_t prev_lo = -1, prev_hi = -1;
        uint32_t n = 0;
        for (ox = 0; ox < d->ow; ox++) {
            int64_t x0 = (int64_t)ox * d->sw - d->pl, lo, hi;
            lo = x0 >= 0 ? 0 : (-x0 + d->dw - 1) / d->dw;
            hi = x0 > (int64_t)d->iw - 1 ? 0 : ((int64_t)d->iw - 1 - x0) / d->dw + 1;
            if (hi > (int64_t)d->kw)
                hi = d->kw;
            if (hi < lo)
                hi = lo;
            if (ox == 0 || lo != prev_lo || hi != prev_hi) {
                s->xrep[n++] = ox;
                prev_lo = lo;
                prev_hi = hi;
            }
            s->xcls[ox] = n - 1u;
        }
        s->n_xcls = n;
    }
    s->row_slots = (uint64_t)d->n * d->oh;
    s->rows = (fs_row_t *)calloc((size_t)s->row_slots, sizeof(fs_row_t));
    if (s->rows == NULL) {
        fs_free(s);
        return -1;
    }
    return 0;
}

void fs_free(fs_sched_t *s)
{
    free(s->b_c0);
    free(s->b_cnt);
    free(s->b_kind);
    free(s->xcls);
    free(s->xrep);
    free(s->rows);
    free(s->table_row);
    free(s->tables);
    s->b_c0 = s->b_cnt = s->xcls = s->xrep = s->tables = NULL;
    s->b_kind = NULL;
    s->rows = NULL;
    s->table_row = NULL;
}

/* The line-buffer ring for the unit (n, oy, b = 0), with the kernel's
 * bookkeeping (bk_ring_next / bk_ring_advance of bitlet_ctl.h, as
 * load_rows): rows [first, hi) are read, one slot each. */
static void fs_ring_next(const bk_insn_t *d, bk_ring_t *r, uint32_t n, uint32_t oy,
                         fs_row_t *row)
{
    int64_t y;
    bk_ring_next(d, r, n, oy, &row->lo, &row->hi, &row->first);
    for (y = row->first; y < row->hi; y++)
        bk_ring_advance(r);
    row->slot_lo = r->slot_lo;
}

/* Tables are shared by key (oy, slot_lo) when that key space is small. */
#define FS_MAX_KEYS (1u << 22)
/* Largest tables memory (uint32 entries) kept; beyond it each task
 * computes its rows' waves (the portable test build sets 0 to test that). */
#ifndef FS_MAX_TABLE_WORDS
#define FS_MAX_TABLE_WORDS (1u << 24)
#endif

int fs_rows(fs_sched_t *s)
{
    const bk_insn_t *d = s->d;
    bk_ring_t ring;
    uint32_t n, oy;
    uint64_t i = 0, keys;
    int32_t *map = NULL;
    bk_ring_init(&ring, bk_ring_rows(d, bk_overlap(d)));
    s->q = ring.q;
    keys = (uint64_t)d->oh * ring.q;
    if (keys <= FS_MAX_KEYS) {
        map = (int32_t *)malloc(sizeof(int32_t) * (size_t)keys);
        if (map == NULL)
            return -1;
        memset(map, 0xFF, sizeof(int32_t) * (size_t)keys);
    }
    s->table_row = (uint64_t *)malloc(sizeof(uint64_t) * (size_t)s->row_slots);
    if (s->table_row == NULL) {
        free(map);
        return -1;
    }
    s->n_tables = 0;
    for (n = 0; n < d->n; n++) {
        for (oy = 0; oy < d->oh; oy++, i++) {
            fs_row_t *r = &s->rows[i];
            fs_ring_next(d, &ring, n, oy, r);
            if (map != NULL) {
                int32_t *m = &map[(uint64_t)oy * ring.q + r->slot_lo];
                if (*m < 0) {
                    *m = (int32_t)s->n_tables;
                    s->table_row[s->n_tables++] = i;
                }
                r->table = (uint32_t)*m;
            } else {
                r->table = s->n_tables;
                s->table_row[s->n_tables++] = i;
            }
        }
    }
    free(map);
    return 0;
}

void fs_tables_alloc(fs_sched_t *s)
{
    uint64_t words = (uint64_t)s->n_tables * fs_waves_size(s);
    s->tables = words <= FS_MAX_TABLE_WORDS && words > 0u
                ? (uint32_t *)malloc(sizeof(uint32_t) * (size_t)words) : NULL;
}

void fs_table_fill(fs_sched_t *s, uint32_t t)
{
    fs_row_waves(s, s->table_row[t], s->tables + (uint64_t)t * fs_waves_size(s));
}

/* ------------------------------------------------------------------ */
/* waves of one output row                                             */
/* ------------------------------------------------------------------ */

void fs_row_waves(const fs_sched_t *s, uint64_t row, uint32_t *waves)
{
    const bk_insn_t *d = s->d;
    const fs_row_t *r = &s->rows[row];
    uint32_t oy = (uint32_t)(row % d->oh), c, k, t;
    const uint32_t reads = BITLET_GROUP / BITLET_WGT_BANKS;   /* the weight read */
    for (c = 0; c < s->n_xcls; c++) {
        for (k = 0; k < s->kinds; k++) {
            for (t = 0; t < s->ng; t++) {
                uint32_t w = bk_waves(d, oy, s->xrep[c], d->kgb + t, 0u, s->kind_ncg[k], r->lo,
                                      r->slot_lo, s->q);
                waves[((uint64_t)c * s->kinds + k) * s->ng + t] = w > reads ? w : reads;
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* per-unit transfers and the instruction's totals                     */
/* ------------------------------------------------------------------ */

/* A read run of a sequence: bk_run_cycles (its beats, at least the burst
 * issue interval); the sequence adds the DDR latency once. */
static void rd(uint64_t *cyc, uint64_t *bytes, uint64_t a, uint64_t n)
{
    *cyc += bk_run_cycles(a, n);
    *bytes += bk_beats(a, n) * BITLET_AXI_BYTES;
}

/* A write run of a sequence: each partly covered edge beat is read first
 * (a 1-beat read the write waits for: latency + 1), then the whole beats
 * are written. */
static void wr(uint64_t *cyc, uint64_t *bytes, uint64_t a, uint64_t n)
{
    uint64_t edges = bk_partial_edges(a, n);
    *cyc += bk_run_cycles(a, n) + edges * (BITLET_DDR_LATENCY + 1u);
    *bytes += (bk_beats(a, n) + edges) * BITLET_AXI_BYTES;
}

/* A sequence of one read run (fetch, bias, resident weights). */
static void rd1(uint64_t *cyc, uint64_t *bytes, uint64_t a, uint64_t n)
{
    *cyc += bk_xfer_cycles(a, n);
    *bytes += bk_beats(a, n) * BITLET_AXI_BYTES;
}

/* Load stage of unit (row, b): input rows (b = 0), weights (not
 * resident), ACC row (FLAG_ACCUM). */
static uint64_t unit_load(const fs_sched_t *s, uint32_t n, uint32_t oy, uint64_t row, uint32_t b,
                          int resident, uint64_t *bytes)
{
    const bk_insn_t *d = s->d;
    uint32_t ab = bk_elem_bytes(d->afmt), wb = bk_elem_bytes(d->wfmt);
    uint32_t c0 = s->b_c0[b], cnt = s->b_cnt[b], ox;
    uint64_t cyc = 0;
    if (b == 0u) {
        const fs_row_t *r = &s->rows[row];
        int64_t y;
        for (y = r->first; y < r->hi; y++) {
            uint64_t px = ((uint64_t)n * d->ih + (uint64_t)y) * d->iw, x;
            if (d->in_cs == d->cin) {
                rd(&cyc, bytes, d->act + px * d->cin * ab, (uint64_t)d->iw * d->cin * ab);
            } else {
                for (x = 0; x < d->iw; x++)
                    rd(&cyc, bytes, d->act + ((px + x) * d->in_cs + d->in_coff) * ab,
                       (uint64_t)d->cin * ab);
            }
        }
    }
    if (!resident)
        rd(&cyc, bytes, d->wgt + (uint64_t)c0 * bk_wrow(d) * wb,
           (uint64_t)cnt * bk_wrow(d) * wb);
    if (d->flags & BITLET_FLAG_ACCUM) {
        uint32_t pb = bk_partial_bytes(d);
        if (d->out_cs == cnt) {
            rd(&cyc, bytes, d->acc + bk_out_index(d, n, oy, 0, c0) * pb,
               (uint64_t)d->ow * cnt * pb);
        } else {
            for (ox = 0; ox < d->ow; ox++)
                rd(&cyc, bytes, d->acc + bk_out_index(d, n, oy, ox, c0) * pb,
                   (uint64_t)cnt * pb);
        }
    }
    return cyc ? BITLET_DDR_LATENCY + cyc : 0u;   /* one read sequence */
}

/* Store stage of unit (row, b): the output row, run by run, one write
 * sequence. */
static uint64_t unit_store(const fs_sched_t *s, uint32_t n, uint32_t oy, uint32_t b,
                           uint64_t *bytes)
{
    const bk_insn_t *d = s->d;
    uint32_t ob = bk_out_elem_bytes(d), c0 = s->b_c0[b], cnt = s->b_cnt[b], ox;
    uint64_t cyc = BITLET_DDR_LATENCY;
    if (d->out_cs == cnt) {
        wr(&cyc, bytes, d->out + bk_out_index(d, n, oy, 0, c0) * ob, (uint64_t)d->ow * cnt * ob);
    } else {
        for (ox = 0; ox < d->ow; ox++)
            wr(&cyc, bytes, d->out + bk_out_index(d, n, oy, ox, c0) * ob, (uint64_t)cnt * ob);
    }
    return cyc;
}

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t m = a > b ? a : b;
    return m > c ? m : c;
}

void fs_totals(const fs_sched_t *s, const uint64_t *cp, uint64_t chunks, uint64_t insn_addr,
               bk_prof_t *p)
{
    const bk_insn_t *d = s->d;
    int resident = bk_weights_resident(d), overlap = bk_overlap(d);
    uint64_t bytes = 0, cyc = BITLET_INSN_OVERHEAD_CYCLES, body = 0, pe = 0;
    uint64_t ld, c1 = 0, s1 = 0, s2 = 0;   /* pipeline: CP_{u-1}, ST_{u-1}, ST_{u-2} */
    uint64_t row = 0, units = 0;
    uint32_t n, oy, b;
    rd1(&cyc, &bytes, insn_addr, BITLET_INSN_BYTES);
    if (d->flags & BITLET_FLAG_BIAS)
        rd1(&cyc, &bytes, d->bias, (uint64_t)d->cout * bk_partial_bytes(d));
    if (resident)
        rd1(&cyc, &bytes, d->wgt, (uint64_t)d->cout * bk_wrow(d) * bk_elem_bytes(d->wfmt));
    for (n = 0; n < d->n; n++) {
        for (oy = 0; oy < d->oh; oy++, row++) {
            for (b = 0; b < s->nb; b++, units++) {
                uint64_t c = s->lat, st, k;
                for (k = 0; k < chunks; k++)
                    c += cp[(row * chunks + k) * s->nb + b];
                ld = unit_load(s, n, oy, row, b, resident, &bytes);
                st = unit_store(s, n, oy, b, &bytes);
                pe += c;
                if (overlap) {          /* phase: LD_u, CP_{u-1}, ST_{u-2} */
                    body += max3(ld, c1, s2);
                    s2 = s1;
                    s1 = st;
                    c1 = c;
                } else {
                    body += ld + c + st;
                }
            }
        }
    }
    if (overlap && units) {             /* the two drain phases */
        body += max3(0u, c1, s2);
        body += s1;
    }
    p->pe = pe;
    p->kernel = cyc + body;
    p->ddr = bytes;
}
