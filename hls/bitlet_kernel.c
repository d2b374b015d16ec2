/*
 * bitlet_kernel.c -- the kernel top: an instruction loop executing GEMM /
 * CONV2D layers held in DDR on an array of BITLET_N_PE Bitlet PEs (or, in
 * vendor_fp_top, on N_PE vendor-FP MAC units, vendor_kernel.c).
 *
 * Semantics: NUMERICS.md sections 5 and 6.  Layouts and fields: bitlet_hw.h.
 * Decode, validation, extents, buffer rules, the output stage and the
 * profile record: bitlet_ctl.h (shared with emu/).  Structure and cycle
 * model: hls/README.md ("Kernel architecture", "Cycle model").
 *
 * Structure (what the code would synthesize to):
 *   - m_axi `mem` of BITLET_AXI_BYTES per beat; every DDR access is a burst
 *     loop over the beats of a contiguous run (rd_run / wr_run), II=1, one
 *     count per beat (at least DDR_LATENCY / DDR_OUTSTANDING per run: the
 *     bursts in flight), plus BITLET_DDR_LATENCY once per stage;
 *   - per output row of a batch (a "unit") three stages: load (input rows
 *     into the line-buffer ring, weight rows, ACC row), compute (the PE
 *     array), store (the output row); ping-pong buffers overlap load of
 *     unit u+1, compute of u and store of u-1 where bk_overlap() allows;
 *   - compute: per (pixel, group) a gather of the activation groups from
 *     the 64-bank line buffer (waves, II=1), the N_PE PEs' preprocess, and
 *     the step loop (II=1) with the N_PE PEs unrolled in lockstep: the only
 *     place S costs cycles;
 *   - no float or double: group sums and bias add are bk_f32_add.
 * Counters are advanced where the clock would be (one count per iteration
 * of each II=1 loop) and combined by the documented pipeline formula.
 */
#include <stdint.h>
#include "bitlet_hw.h"
#include "bitlet_ctl.h"
#include "bitlet_pe.h"
#include "bitlet_top.h"
#ifdef BITLET_RTL_PE
#include "rtl/bitlet_pe_bb.h" /* the RTL PE as an HLS RTL blackbox */
#endif

#define BK_WPB      (BITLET_AXI_BYTES / 8u)               /* 64-bit words per beat */
#define BK_WLANE    (BITLET_WGT_BUF_WORDS / BITLET_N_PE)   /* weight words per PE lane */
#define BK_OLANE    (BITLET_OUT_BUF_WORDS / BITLET_N_PE)   /* out words per PE lane */
#define BK_MAX_T    64u                                    /* tile groups: 64*T <= WLANE */
#define BK_ISSUE    (BITLET_DDR_LATENCY / BITLET_DDR_OUTSTANDING)  /* cycles per burst, min */

#if BITLET_AXI_BYTES != 8 && BITLET_AXI_BYTES != 16
#error "BITLET_AXI_BYTES must be 8 or 16"
#endif
#if BITLET_DDR_OUTSTANDING != 4
#error "the m_axi INTERFACE pragmas say num_read_outstanding=4 num_write_outstanding=4"
#endif
#if BITLET_ACT_BANKS != 64 || BITLET_WGT_BANKS != 8
#error "the ARRAY_PARTITION factors of the tops say 64 line-buffer and 8 weight banks"
#endif

/* ------------------------------------------------------------------ */
/* On-chip buffers (storage: hls/README.md "On-chip buffers")          */
/* ------------------------------------------------------------------ */
static uint32_t act_buf[BITLET_ACT_BUF_WORDS];           /* line-buffer ring, PE words */
static uint32_t wgt_buf[BITLET_N_PE][BK_WLANE];          /* weight words, lane per PE  */
static uint32_t out_buf[BITLET_N_PE][BK_OLANE];          /* accumulators, lane per PE  */
static uint32_t bias_buf[BITLET_BIAS_BUF_WORDS];         /* fp32 bits or int64 lo/hi   */

typedef struct {               /* the m_axi window */
    uint64_t *mem;
    uint64_t base;
    uint32_t size;
    uint64_t ddr;              /* bus bytes moved by this instruction */
} bk_bus_t;

/* Where the beats of a read run go. */
enum { SINK_ACT, SINK_WGT, SINK_BIAS, SINK_ACC, SINK_INSN };

typedef struct {
    uint32_t kind;             /* SINK_* */
    uint32_t fmt;              /* element format (conversions)           */
    uint32_t eu, esh;          /* unit bytes 2 or 4 (int64: two units), log2 */
    uint32_t at;               /* linear sinks: next word index           */
    uint32_t lane, j, rowlen;  /* SINK_WGT / SINK_ACC counters            */
    uint32_t lanes, half, halves, ox, obase, ow_words;
    uint32_t *insn;            /* SINK_INSN: the 32 instruction words     */
} bk_sink_t;

/* One unit (an output row of a batch) in flight. */
typedef struct {
    uint32_t n, oy, b, c0, cnt, cg0, ncg;
    int64_t lo, hi;            /* input rows of its window               */
    uint32_t slot_lo, q;       /* ring slot of row lo, rows in the ring  */
    uint32_t wsel, oslot;      /* weight half, out-buffer slot           */
    uint32_t qp[BITLET_N_PE];  /* PE p: channel group cg0 + qp[p]        */
} bk_unit_t;

/* ------------------------------------------------------------------ */
/* Burst transfers                                                     */
/* ------------------------------------------------------------------ */
static void rd_beat(const bk_bus_t *bus, uint64_t beat, uint64_t w[BK_WPB])
{
    uint64_t i0 = (beat * BITLET_AXI_BYTES - bus->base) / 8u;
    uint32_t i;
    for (i = 0; i < BK_WPB; i++) {
#pragma HLS UNROLL
        w[i] = bus->mem[i0 + i];
    }
}

static void wr_beat(bk_bus_t *bus, uint64_t beat, const uint64_t w[BK_WPB])
{
    uint64_t i0 = (beat * BITLET_AXI_BYTES - bus->base) / 8u;
    uint32_t i;
    for (i = 0; i < BK_WPB; i++) {
#pragma HLS UNROLL
        bus->mem[i0 + i] = w[i];
    }
}

/* Unit l (of eu bytes) of a beat. */
static uint32_t beat_unit(const uint64_t w[BK_WPB], uint32_t l, uint32_t eu)
{
    uint32_t byte = l * eu;
    uint64_t word = w[byte / 8u];
    uint32_t v = (uint32_t)(word >> (8u * (byte % 8u)));
    return eu == 2u ? (v & BITLET_HALF_MASK) : v;
}

static void set_unit(uint64_t w[BK_WPB], uint32_t l, uint32_t eu, uint32_t v)
{
    uint32_t byte = l * eu, sh = 8u * (byte % 8u);
    uint64_t mask = (eu == 2u ? 0xFFFFull : 0xFFFFFFFFull) << sh;
    w[byte / 8u] = (w[byte / 8u] & ~mask) | (((uint64_t)v << sh) & mask);
}

/* Deliver unit s of a read run to its sink (counters, no division). */
static void sink_put(bk_sink_t *k, uint32_t v)
{
    switch (k->kind) {
    case SINK_ACT:
        act_buf[k->at++] = bk_act_word(v, k->fmt);
        break;
    case SINK_BIAS:
        bias_buf[k->at++] = v;
        break;
    case SINK_INSN:
        k->insn[k->at++] = v;
        break;
    case SINK_WGT:                 /* rows of rowlen words, lane by lane */
        wgt_buf[k->lane][k->at + k->j] = bk_weight_word(v, k->fmt);
        if (++k->j == k->rowlen) {
            k->j = 0;
            if (++k->lane == k->lanes) {
                k->lane = 0;
                k->at += k->rowlen;
            }
        }
        break;
    default:                       /* SINK_ACC: [ox][p][half] -> lane p */
        out_buf[k->lane][k->obase + k->ox * k->halves + k->half] = v;
        if (++k->half == k->halves) {
            k->half = 0;
            if (++k->lane == k->lanes) {
                k->lane = 0;
                k->ox++;
            }
        }
        break;
    }
}

/* Burst read of the run [a, a + units * eu) into a sink: one iteration per
 * beat (II=1).  Returns the cycles it occupies the read channel: its beats,
 * at least DDR_LATENCY / DDR_OUTSTANDING (the caller adds the latency once
 * per stage). */
static uint64_t rd_run(bk_bus_t *bus, uint64_t a, uint64_t units, bk_sink_t *k)
{
    uint64_t bytes = units * k->eu;
    uint64_t first = a / BITLET_AXI_BYTES, last = (a + bytes - 1u) / BITLET_AXI_BYTES;
    uint64_t beat, beats = 0;
    int64_t s0 = -(int64_t)((a - first * BITLET_AXI_BYTES) >> k->esh);  /* unit of lane 0 */
    for (beat = first; beat <= last; beat++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=4096
        uint64_t w[BK_WPB];
        uint32_t l;
        rd_beat(bus, beat, w);
        for (l = 0; l < BITLET_AXI_BYTES / 2u; l++) {
#pragma HLS UNROLL
            int64_t s = s0 + (int64_t)l;
            if (l < ((uint32_t)BITLET_AXI_BYTES >> k->esh) && s >= 0 && s < (int64_t)units)
                sink_put(k, beat_unit(w, l, k->eu));
        }
        s0 += BITLET_AXI_BYTES >> k->esh;
        beats++;
    }
    bus->ddr += beats * BITLET_AXI_BYTES;
    return beats > BK_ISSUE ? beats : BK_ISSUE;
}

/* ------------------------------------------------------------------ */
/* Loads                                                               */
/* ------------------------------------------------------------------ */
static bk_sink_t sink(uint32_t kind, uint32_t fmt, uint32_t eu, uint32_t at)
{
    bk_sink_t k = {kind, fmt, eu, eu >> 1, at, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    return k;
}

/* Bias into bias_buf; fixed mode: every |bias| < 2^61 else BAD_FIELD. */
static uint32_t load_bias(bk_bus_t *bus, const bk_insn_t *d, uint64_t *cyc)
{
    bk_sink_t k = sink(SINK_BIAS, BITLET_FMT_FP32, 4u, 0u);
    uint32_t c;
    *cyc += BITLET_DDR_LATENCY + rd_run(bus, d->bias, (uint64_t)d->cout * bk_acc_words(d), &k);
    if (!d->isfix)
        return BITLET_STATUS_OK;
    for (c = 0; c < d->cout; c++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=4096
        uint64_t b = (uint64_t)bias_buf[2u * c] | ((uint64_t)bias_buf[2u * c + 1u] << 32);
        if (!bk_fixed_bias_ok((int64_t)b))
            return BITLET_STATUS_BAD_FIELD;
    }
    return BITLET_STATUS_OK;
}

/* Weight rows [c0, c0 + cnt) (one run): resident (all COUT rows, channel c
 * in lane c mod N_PE) or into half `wsel` of lanes 0 .. cnt-1. */
static uint64_t load_weights(bk_bus_t *bus, const bk_insn_t *d, uint32_t c0, uint32_t cnt,
                             uint32_t wsel, int resident)
{
    uint32_t row = bk_wrow(d);
    bk_sink_t k = sink(SINK_WGT, d->wfmt, bk_elem_bytes(d->wfmt), resident ? 0u : wsel * row);
    k.rowlen = row;
    k.lanes = resident ? BITLET_N_PE : cnt;
    return rd_run(bus, d->wgt + (uint64_t)c0 * row * k.eu, (uint64_t)cnt * row, &k);
}

/* K padding (k >= K) is w = +0 whatever the row holds there. */
static uint32_t tile_weight(const bk_insn_t *d, uint32_t word, uint32_t jt)
{
    return (uint64_t)d->kgb * BITLET_GROUP + jt < d->k ? word : 0u;
}

/* Input rows of unit u's window that the ring does not hold yet
 * (bk_ring_next decides; each row is one burst run, or one per pixel). */
static uint64_t load_rows(bk_bus_t *bus, const bk_insn_t *d, bk_ring_t *r, bk_unit_t *u)
{
    uint32_t ab = bk_elem_bytes(d->afmt);
    uint64_t cyc = 0, row_words = (uint64_t)d->iw * d->cin;
    int64_t lo, hi, y, first;
    bk_ring_next(d, r, u->n, u->oy, &lo, &hi, &first);
    for (y = first; y < hi; y++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=11
        uint64_t px = ((uint64_t)u->n * d->ih + (uint64_t)y) * d->iw;
        bk_sink_t k = sink(SINK_ACT, d->afmt, ab, (uint32_t)(r->wp * row_words));
        uint32_t x;
        if (d->in_cs == d->cin) {
            cyc += rd_run(bus, d->act + px * d->cin * ab, row_words, &k);
        } else {
            for (x = 0; x < d->iw; x++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=224
                cyc += rd_run(bus, d->act + ((px + x) * d->in_cs + d->in_coff) * ab, d->cin, &k);
            }
        }
        bk_ring_advance(r);
    }
    u->lo = lo;
    u->hi = hi;
    u->slot_lo = r->slot_lo;
    u->q = r->q;
    return cyc;
}

/* The ACC row of a unit into out-buffer slot u->oslot. */
static uint64_t load_acc(bk_bus_t *bus, const bk_insn_t *d, const bk_unit_t *u)
{
    uint32_t w = bk_acc_words(d), pb = bk_partial_bytes(d);
    bk_sink_t k = sink(SINK_ACC, BITLET_FMT_FP32, 4u, 0u);
    uint64_t cyc = 0;
    uint32_t ox;
    k.lanes = u->cnt;
    k.halves = w;
    k.obase = u->oslot * d->ow * w;
    if (d->out_cs == u->cnt)
        return rd_run(bus, d->acc + bk_out_index(d, u->n, u->oy, 0, u->c0) * pb,
                      (uint64_t)d->ow * u->cnt * w, &k);
    for (ox = 0; ox < d->ow; ox++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=224
        cyc += rd_run(bus, d->acc + bk_out_index(d, u->n, u->oy, ox, u->c0) * pb,
                      (uint64_t)u->cnt * w, &k);
    }
    return cyc;
}

static uint64_t load_unit(bk_bus_t *bus, const bk_insn_t *d, bk_ring_t *r, bk_unit_t *u,
                          int resident)
{
    uint64_t cyc = 0;
    if (u->b == 0u) {
        cyc += load_rows(bus, d, r, u);
    } else {                      /* the row's window is already resident */
        u->lo = r->lo;
        u->hi = r->hi;
        u->slot_lo = r->slot_lo;
        u->q = r->q;
    }
    if (!resident)
        cyc += load_weights(bus, d, u->c0, u->cnt, u->wsel, 0);
    if (d->flags & BITLET_FLAG_ACCUM)
        cyc += load_acc(bus, d, u);
    return cyc ? BITLET_DDR_LATENCY + cyc : 0u;   /* one read sequence */
}

/* ------------------------------------------------------------------ */
/* Store                                                               */
/* ------------------------------------------------------------------ */
/* Output unit (eu bytes) of element (ox, p), half h, from out_buf. */
static uint32_t out_unit(const bk_insn_t *d, const bk_unit_t *u, uint32_t ox, uint32_t p,
                         uint32_t h)
{
    uint32_t w = bk_acc_words(d), at = u->oslot * d->ow * w + ox * w;
    uint32_t co = u->c0 + p;
    if (d->isfix) {
        int64_t s = (int64_t)((uint64_t)out_buf[p][at] | ((uint64_t)out_buf[p][at + 1u] << 32));
        int64_t b;
        if (d->flags & BITLET_FLAG_PARTIAL)
            return h ? (uint32_t)((uint64_t)s >> 32) : (uint32_t)((uint64_t)s & 0xFFFFFFFFu);
        b = (int64_t)((uint64_t)bias_buf[2u * co] | ((uint64_t)bias_buf[2u * co + 1u] << 32));
        return bk_final_fixed(d, s, b);
    }
    if (d->flags & BITLET_FLAG_PARTIAL)
        return bk_partial_float(out_buf[p][at]);
    return bk_final_float(d, out_buf[p][at], bias_buf[co]);
}

/* One output run of `units` units at a, elements from (ox0, p = 0):
 * edge beats read first (read-modify-write), then whole beats. */
static uint64_t wr_run(bk_bus_t *bus, const bk_insn_t *d, const bk_unit_t *u, uint64_t a,
                       uint64_t units, uint32_t eu, uint32_t ox0)
{
    uint64_t bytes = units * eu;
    uint64_t first = a / BITLET_AXI_BYTES, last = (a + bytes - 1u) / BITLET_AXI_BYTES;
    uint64_t head[BK_WPB], tail[BK_WPB], beat, beats = 0, cyc = 0;
    uint32_t esh = eu >> 1;                       /* log2 of eu (2 or 4) */
    int64_t s0 = -(int64_t)((a - first * BITLET_AXI_BYTES) >> esh);
    uint32_t halves = eu == 4u && d->isfix && (d->flags & BITLET_FLAG_PARTIAL) ? 2u : 1u;
    uint32_t ox = ox0, p = 0, h = 0, i;
    uint32_t edges = bk_partial_edges(a, bytes);
    for (i = 0; i < BK_WPB; i++)
        head[i] = tail[i] = 0u;
    if (a % BITLET_AXI_BYTES) {                   /* head edge: read it */
        rd_beat(bus, first, head);
        cyc += BITLET_DDR_LATENCY + 1u;
    }
    if (last == first && (a % BITLET_AXI_BYTES)) { /* one beat: the head read serves */
        for (i = 0; i < BK_WPB; i++)
            tail[i] = head[i];
    } else if ((a + bytes) % BITLET_AXI_BYTES) {  /* tail edge */
        rd_beat(bus, last, tail);
        cyc += BITLET_DDR_LATENCY + 1u;
    }
    bus->ddr += (uint64_t)edges * BITLET_AXI_BYTES;
    for (beat = first; beat <= last; beat++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=4096
        uint64_t w[BK_WPB];
        uint32_t l;
        for (i = 0; i < BK_WPB; i++) {
#pragma HLS UNROLL
            w[i] = beat == last ? tail[i] : (beat == first ? head[i] : 0u);
        }
        for (l = 0; l < BITLET_AXI_BYTES / 2u; l++) {
#pragma HLS UNROLL
            int64_t s = s0 + (int64_t)l;
            if (l < ((uint32_t)BITLET_AXI_BYTES >> esh) && s >= 0 && s < (int64_t)units) {
                set_unit(w, l, eu, out_unit(d, u, ox, p, h));
                if (++h == halves) {              /* counters: half, PE, pixel */
                    h = 0;
                    if (++p == u->cnt) {
                        p = 0;
                        ox++;
                    }
                }
            }
        }
        wr_beat(bus, beat, w);
        s0 += BITLET_AXI_BYTES >> esh;
        beats++;
    }
    bus->ddr += beats * BITLET_AXI_BYTES;
    return cyc + (beats > BK_ISSUE ? beats : BK_ISSUE);
}

/* The output row of a unit: one write sequence (DDR latency once). */
static uint64_t store_unit(bk_bus_t *bus, const bk_insn_t *d, const bk_unit_t *u)
{
    uint32_t ob = bk_out_elem_bytes(d), eu = ob == 2u ? 2u : 4u, per = ob / eu;
    uint64_t cyc = BITLET_DDR_LATENCY;
    uint32_t ox;
    if (d->out_cs == u->cnt)
        return cyc + wr_run(bus, d, u, d->out + bk_out_index(d, u->n, u->oy, 0, u->c0) * ob,
                            (uint64_t)d->ow * u->cnt * per, eu, 0u);
    for (ox = 0; ox < d->ow; ox++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=224
        cyc += wr_run(bus, d, u, d->out + bk_out_index(d, u->n, u->oy, ox, u->c0) * ob,
                      (uint64_t)u->cnt * per, eu, ox);
    }
    return cyc;
}

/* ------------------------------------------------------------------ */
/* Compute: the PE array                                               */
/* ------------------------------------------------------------------ */
typedef struct {               /* start of each tile group in (kh, kw, ci) */
    uint32_t kh[BK_MAX_T], kw[BK_MAX_T], ci[BK_MAX_T];
} bk_gstart_t;

/* Once per instruction (outside the pipelined loops). */
static void group_starts(const bk_insn_t *d, bk_gstart_t *gs)
{
    uint32_t t;
    for (t = 0; t < d->kge - d->kgb; t++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=64
        uint32_t k = (d->kgb + t) * BITLET_GROUP, tap = k / d->cin_g;
        gs->ci[t] = k % d->cin_g;
        gs->kh[t] = tap / d->kw;
        gs->kw[t] = tap % d->kw;
    }
}

/* The gather of one group step: the activation group of each of the ncg
 * channel groups of the batch (q = cg - cg0), through the 64-bank line
 * buffer.  Request generation (unrolled): element j of channel group q
 * reads word f in bank f mod 64 and gets a rank (its place in that bank's
 * queue); then the wave loop (II=1): in wave v every bank serves its
 * request of rank v.  Returns the waves (iterations of the wave loop). */
static uint32_t gather(const bk_insn_t *d, const bk_unit_t *u, const bk_gstart_t *gs,
                       uint32_t t, uint32_t ox, uint32_t a[BITLET_N_PE][BITLET_GROUP])
{
    uint32_t f[BITLET_N_PE][BITLET_GROUP];
    uint32_t rank[BITLET_N_PE][BITLET_GROUP];
    uint32_t count[BITLET_ACT_BANKS];
#pragma HLS ARRAY_PARTITION variable=f type=complete dim=0
#pragma HLS ARRAY_PARTITION variable=rank type=complete dim=0
#pragma HLS ARRAY_PARTITION variable=count type=complete dim=0
    uint32_t q, j, b, waves = 0, v;
    uint64_t k0 = (uint64_t)(d->kgb + t) * BITLET_GROUP;
    int64_t y0 = (int64_t)u->oy * d->sh - d->pt, x0 = (int64_t)ox * d->sw - d->pl;
    uint64_t row_words = (uint64_t)d->iw * d->cin;
    for (b = 0; b < BITLET_ACT_BANKS; b++) {
#pragma HLS UNROLL
        count[b] = 0u;
    }
    for (q = 0; q < BITLET_N_PE; q++) {           /* request generation */
#pragma HLS UNROLL
        uint32_t kh = gs->kh[t], kw = gs->kw[t], ci = gs->ci[t];
        uint32_t cbase = (u->cg0 + q) * d->cin_g;
        for (j = 0; j < BITLET_GROUP; j++) {
#pragma HLS UNROLL
            int64_t y = y0 + (int64_t)kh * d->dh, x = x0 + (int64_t)kw * d->dw;
            int in = q < u->ncg && k0 + j < d->k && y >= 0 && y < (int64_t)d->ih && x >= 0
                     && x < (int64_t)d->iw;
            a[q][j] = 0u;                          /* padding, K padding: +0 */
            rank[q][j] = 0xFFFFFFFFu;              /* no request */
            f[q][j] = 0u;
            if (in) {
                f[q][j] = (uint32_t)(bk_ring_slot(y, u->lo, u->slot_lo, u->q) * row_words
                                     + (uint64_t)x * d->cin + cbase + ci);
                b = f[q][j] % BITLET_ACT_BANKS;    /* constant 64: the low 6 bits */
                rank[q][j] = count[b]++;
                waves = count[b] > waves ? count[b] : waves;
            }
            if (++ci == d->cin_g) {               /* counters: ci, kw, kh */
                ci = 0;
                if (++kw == d->kw) {
                    kw = 0;
                    kh++;
                }
            }
        }
    }
    for (v = 0; v < waves; v++) {                 /* the waves */
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=9
        for (q = 0; q < BITLET_N_PE; q++) {
#pragma HLS UNROLL
            for (j = 0; j < BITLET_GROUP; j++) {
#pragma HLS UNROLL
                if (rank[q][j] == v)
                    a[q][j] = act_buf[f[q][j]];
            }
        }
    }
    return v;
}

static uint32_t pe_weight(const bk_insn_t *d, const bk_unit_t *u, uint32_t p, uint32_t t,
                          uint32_t j, int resident);

/* The weight read of one group step: each PE's lane has BITLET_WGT_BANKS
 * banks (word j of a row in bank j mod WGT_BANKS), so the 64 weights of a
 * group arrive in 64 / WGT_BANKS reads (II=1, all PEs in parallel),
 * overlapped with the previous step like the gather.  Returns the reads. */
static uint32_t read_weights(const bk_insn_t *d, const bk_unit_t *u, uint32_t t, int resident,
                             uint32_t w[BITLET_N_PE][BITLET_GROUP])
{
    uint32_t r, b, p, reads = 0;
    for (r = 0; r < BITLET_GROUP / BITLET_WGT_BANKS; r++) {
#pragma HLS PIPELINE II=1
        for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS UNROLL
            for (b = 0; b < BITLET_WGT_BANKS; b++) {
#pragma HLS UNROLL
                uint32_t j = r * BITLET_WGT_BANKS + b;
                w[p][j] = p < u->cnt ? pe_weight(d, u, p, t, j, resident) : 0u;
            }
        }
        reads++;
    }
    return reads;
}

/* Weight word j of group t for PE p of the unit. */
static uint32_t pe_weight(const bk_insn_t *d, const bk_unit_t *u, uint32_t p, uint32_t t,
                          uint32_t j, int resident)
{
    uint32_t row = bk_wrow(d), jt = t * BITLET_GROUP + j, co = u->c0 + p;
    uint32_t word;
    if (resident)                    /* channel co in lane co mod N_PE (constant divisor) */
        word = wgt_buf[co % BITLET_N_PE][(co / BITLET_N_PE) * row + jt];
    else
        word = wgt_buf[p][u->wsel * row + jt];
    return tile_weight(d, word, jt);
}

typedef struct {               /* compute-stage counts of one unit */
    uint64_t cyc, ref, groups, scan;
} bk_cp_t;

/* Reference-schedule cost of one group step (NUMERICS.md s.5): each
 * sub-batch (the batch, or each channel group when Cout_g < N_PE) costs
 * LAT + 1 + its slowest S. */
static uint64_t ref_step(const bk_insn_t *d, const bk_unit_t *u, const uint32_t s[BITLET_N_PE],
                         uint32_t lat)
{
    uint64_t cost = 0;
    uint32_t m = 0, p, left = d->cout_g - (u->c0 % d->cout_g);
    for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS UNROLL
        if (p >= u->cnt)
            continue;
        m = s[p] > m ? s[p] : m;
        if (--left == 0u || p + 1u == u->cnt) {   /* end of a channel group */
            cost += lat + 1u + m;
            m = 0;
            left = d->cout_g;
        }
    }
    return cost;
}

#ifdef BITLET_RTL_PE
/* The RTL PE build (-DBITLET_RTL_PE, run_hls.tcl with BITLET_RTL_PE=1): the
 * whole per-PE work of one group step is this one call of the RTL blackbox
 * bitlet_pe_bb() (hls/rtl/bitlet_pe_bb.json, ap_ctrl_chain), whose C model
 * is the HLS C PE (bitlet_pe_group).  The ports are wires, so the 64 pairs
 * travel packed (hls/rtl/bitlet_pe_bb.h: pair k of a field of B bits at bits
 * [B*k, B*k+B) of the concatenated words).  All modes: ctrl carries the
 * mode and quant as the RTL takes them (isfix | quant << 1 | prune << 6);
 * fixed mode sums the exact group accumulator of the blackbox's acc output
 * (the RTL PE's out_acc), as the C PE build sums bitlet_pe_result_t.acc.
 * Returns S (the blackbox's scan output), the result word in *res and the
 * accumulator in *acc. */
static uint32_t bk_pe_rtl(const uint32_t w[BITLET_GROUP], const uint32_t a[BITLET_GROUP],
                          const bk_insn_t *d, uint32_t *res, int64_t *acc)
{
#pragma HLS INLINE
    uint64_t ws = 0, we[8], wa[24], aw[32];
#pragma HLS ARRAY_PARTITION variable=we type=complete dim=1
#pragma HLS ARRAY_PARTITION variable=wa type=complete dim=1
#pragma HLS ARRAY_PARTITION variable=aw type=complete dim=1
    uint32_t k, scan = 0, isfix = d->isfix ? 1u : 0u;
    for (k = 0; k < 32u; k++) {
#pragma HLS UNROLL
        aw[k] = (uint64_t)a[2u * k] | (uint64_t)a[2u * k + 1u] << 32;
        if (k < 8u)
            we[k] = 0u;
        if (k < 24u)
            wa[k] = 0u;
    }
    for (k = 0; k < BITLET_GROUP; k++) {          /* wiring after unrolling */
#pragma HLS UNROLL
        uint8_t sig, ex;
        uint32_t ab, lo = 24u * k;
        bitlet_weight_port(w[k], (int)isfix, &sig, &ex, &ab);
        ws |= (uint64_t)(sig & 1u) << k;
        we[k / 8u] |= (uint64_t)ex << (8u * (k % 8u));
        wa[lo / 64u] |= (uint64_t)ab << (lo % 64u);
        if (lo % 64u > 40u)                        /* the field crosses a word */
            wa[lo / 64u + 1u] |= (uint64_t)ab >> (64u - lo % 64u);
    }
    bitlet_pe_bb(ws, we[0], we[1], we[2], we[3], we[4], we[5], we[6], we[7],
                 wa[0], wa[1], wa[2], wa[3], wa[4], wa[5], wa[6], wa[7], wa[8], wa[9], wa[10],
                 wa[11], wa[12], wa[13], wa[14], wa[15], wa[16], wa[17], wa[18], wa[19], wa[20],
                 wa[21], wa[22], wa[23],
                 aw[0], aw[1], aw[2], aw[3], aw[4], aw[5], aw[6], aw[7], aw[8], aw[9], aw[10],
                 aw[11], aw[12], aw[13], aw[14], aw[15], aw[16], aw[17], aw[18], aw[19], aw[20],
                 aw[21], aw[22], aw[23], aw[24], aw[25], aw[26], aw[27], aw[28], aw[29], aw[30],
                 aw[31],
                 isfix | (isfix ? d->quant & 31u : 0u) << 1 | (d->prune & BITLET_PRUNE_ALL) << 6,
                 res, &scan, acc);
    return scan;
}
#endif

/* Bitlet: one unit on the PE array.  Per pixel and group: the gather
 * (waves), the N_PE preprocess stages, then the step loop with the N_PE
 * PEs in lockstep; a step costs max(1 + max S, waves). */
static void compute_bitlet(const bk_insn_t *d, const bk_unit_t *u, const bk_gstart_t *gs,
                           int resident, bk_cp_t *cp)
{
    static uint32_t a[BITLET_N_PE][BITLET_GROUP];
    static uint32_t wv[BITLET_N_PE][BITLET_GROUP];
#pragma HLS ARRAY_PARTITION variable=a type=complete dim=0
#pragma HLS ARRAY_PARTITION variable=wv type=complete dim=0
#ifndef BITLET_RTL_PE
    static bitlet_pe_pre_t pre[BITLET_N_PE];
    static bitlet_pe_calc_t calc[BITLET_N_PE];
#pragma HLS ARRAY_PARTITION variable=pre type=complete dim=1
#pragma HLS ARRAY_PARTITION variable=calc type=complete dim=1
    uint32_t j;
#endif
    uint32_t lat = d->isfix ? BITLET_LAT_FIXED : BITLET_LAT_FP32;
    uint32_t w = bk_acc_words(d), ob = u->oslot * d->ow * w;
    uint32_t T = d->kge - d->kgb, ox, t, p;
    cp->cyc += lat;                                   /* group pipeline fill/drain */
    for (ox = 0; ox < d->ow; ox++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=224
        uint32_t accf[BITLET_N_PE];
        int64_t acci[BITLET_N_PE];
        for (p = 0; p < BITLET_N_PE; p++) {          /* start: ACC row or +0 */
#pragma HLS UNROLL
            uint32_t at = ob + ox * w;
            int acc = (d->flags & BITLET_FLAG_ACCUM) && p < u->cnt;
            accf[p] = acc ? out_buf[p][at] : 0u;
            acci[p] = acc && d->isfix
                      ? (int64_t)((uint64_t)out_buf[p][at] | ((uint64_t)out_buf[p][at + 1u] << 32))
                      : 0;
        }
        for (t = 0; t < T; t++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=64
            uint32_t s[BITLET_N_PE], waves, reads, it, step;
            waves = gather(d, u, gs, t, ox, a);
            reads = read_weights(d, u, t, resident, wv);
#ifdef BITLET_RTL_PE
            /* the N_PE RTL PEs, one blackbox call each:
             * in lockstep the array takes the next group when the slowest PE
             * has, 1 + max S clocks later (the RTL PE loads a group S_p + 1
             * clocks after the previous one, tests/test_rtl_pe.py) */
            it = 0;
            for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS UNROLL
                uint32_t res = 0;
                int64_t racc = 0;
                s[p] = 0u;
                if (p >= u->cnt)
                    continue;
                s[p] = bk_pe_rtl(wv[p], a[u->qp[p]], d, &res, &racc);
                it = s[p] > it ? s[p] : it;
                if (d->isfix)
                    acci[p] = bk_sat_add64(acci[p], racc);
                else
                    accf[p] = bk_f32_add(accf[p], res);
                cp->scan += s[p];
            }
#else
            uint32_t busy = 0;
            for (p = 0; p < BITLET_N_PE; p++) {      /* the N_PE preprocess stages */
#pragma HLS UNROLL
                uint8_t sig[BITLET_GROUP], ex[BITLET_GROUP];
                uint32_t ab[BITLET_GROUP];
#pragma HLS ARRAY_PARTITION variable=sig type=complete dim=1
#pragma HLS ARRAY_PARTITION variable=ex type=complete dim=1
#pragma HLS ARRAY_PARTITION variable=ab type=complete dim=1
                s[p] = 0u;
                if (p >= u->cnt)
                    continue;
                for (j = 0; j < BITLET_GROUP; j++) {
#pragma HLS UNROLL
                    bitlet_weight_port(wv[p][j], (int)d->isfix, &sig[j], &ex[j], &ab[j]);
                }
                bitlet_pe_preprocess(sig, ex, ab, a[u->qp[p]],
                                     (int)d->isfix, d->prune, d->quant, &pre[p]);
                bitlet_pe_load(&pre[p], &calc[p]);
                busy |= (uint32_t)(bitlet_pe_busy(&calc[p]) != 0) << p;
            }
            for (it = 0; it < BITLET_GROUP && busy; it++) {   /* the step loop */
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=0 max=64
                uint32_t next = 0;
                for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS UNROLL
                    if ((busy >> p) & 1u) {
                        s[p]++;
                        next |= (uint32_t)(bitlet_pe_step(&calc[p]) != 0) << p;
                    }
                }
                busy = next;
            }
            for (p = 0; p < BITLET_N_PE; p++) {      /* finish, group sums */
#pragma HLS UNROLL
                bitlet_pe_result_t r;
                if (p >= u->cnt)
                    continue;
                bitlet_pe_finish(&calc[p], &r);
                if (d->isfix)
                    acci[p] = bk_sat_add64(acci[p], r.acc);
                else
                    accf[p] = bk_f32_add(accf[p], r.res);
                cp->scan += s[p];
            }
#endif
            step = 1u + it;                           /* load cycle + steps */
            step = step > waves ? step : waves;       /* the gather of this group */
            cp->cyc += step > reads ? step : reads;   /* its weight read */
            cp->ref += ref_step(d, u, s, lat);
            cp->groups += u->cnt;
        }
        for (p = 0; p < BITLET_N_PE; p++) {          /* keep the pixel's sums */
#pragma HLS UNROLL
            uint32_t at = ob + ox * w;
            if (p >= u->cnt)
                continue;
            if (d->isfix) {
                out_buf[p][at] = (uint32_t)((uint64_t)acci[p] & 0xFFFFFFFFu);
                out_buf[p][at + 1u] = (uint32_t)((uint64_t)acci[p] >> 32);
            } else {
                out_buf[p][at] = accf[p];
            }
        }
    }
}

/* Vendor-FP: one unit on the N_PE MAC units (vendor_kernel.c). */
static void compute_vendor(const bk_insn_t *d, const bk_unit_t *u, const bk_gstart_t *gs,
                           int resident, bk_cp_t *cp)
{
    static uint32_t a[BITLET_N_PE][BITLET_GROUP];
    static uint32_t wv[BITLET_N_PE][BITLET_GROUP];
    static uint32_t ap[BITLET_N_PE][BITLET_GROUP];
    bk_vendor_acc_t v;
    uint32_t ob = u->oslot * d->ow, T = d->kge - d->kgb, ox, t, p, j;
    cp->cyc += BITLET_VENDOR_MUL_LAT + BITLET_VENDOR_ADD_LAT * (BITLET_VENDOR_TREE_DEPTH + 3u);
    for (ox = 0; ox < d->ow; ox++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=224
        bk_vendor_clear(&v);
        for (t = 0; t < T; t++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=64
            uint32_t waves = gather(d, u, gs, t, ox, a), mac, reads;
            reads = read_weights(d, u, t, resident, wv);
            for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS UNROLL
                for (j = 0; j < BITLET_GROUP; j++) {
#pragma HLS UNROLL
                    ap[p][j] = p < u->cnt ? a[u->qp[p]][j] : 0u;
                }
            }
            mac = bk_vendor_group(wv, ap, u->cnt, &v);
            mac = mac > waves ? mac : waves;
            cp->cyc += mac > reads ? mac : reads;
            cp->groups += u->cnt;
        }
        for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS UNROLL
            uint32_t start = (d->flags & BITLET_FLAG_ACCUM) ? out_buf[p][ob + ox] : 0u;
            if (p < u->cnt)
                out_buf[p][ob + ox] = bk_vendor_finish(&v, p, start);
        }
    }
}

/* ------------------------------------------------------------------ */
/* One instruction: units through load / compute / store               */
/* ------------------------------------------------------------------ */
/* The unit after u (counters over b, oy, n; no division). */
static void next_unit(const bk_insn_t *d, uint32_t nb, bk_unit_t *u)
{
    if (++u->b == nb) {
        u->b = 0;
        if (++u->oy == d->oh) {
            u->oy = 0;
            u->n++;
        }
    }
}

static void unit_batch(const bk_insn_t *d, bk_unit_t *u, uint32_t t, int overlap)
{
    bk_batch_channels(d, u->b, &u->c0, &u->cnt);
    bk_batch_cgs(d, u->c0, u->cnt, &u->cg0, &u->ncg);
    {                                 /* PE -> channel group, by counters */
        uint32_t p, q = 0, left = d->cout_g - (u->c0 - u->cg0 * d->cout_g);
        for (p = 0; p < BITLET_N_PE; p++) {
#pragma HLS UNROLL
            u->qp[p] = q;
            if (--left == 0u) {
                left = d->cout_g;
                q++;
            }
        }
    }
    u->wsel = overlap ? (t & 1u) : 0u;
    u->oslot = overlap ? t % bk_out_slots(d) : 0u;
}

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t m = a > b ? a : b;
    return m > c ? m : c;
}

static uint32_t execute(bk_bus_t *bus, const bk_insn_t *d, int kind, bk_prof_t *prof,
                        uint64_t *cyc)
{
    static bk_gstart_t gs;
    uint32_t nb = bk_n_batches(d);
    uint64_t units = (uint64_t)d->n * d->oh * nb, t;
    int resident = bk_weights_resident(d), overlap = bk_overlap(d);
    bk_ring_t ring;
    bk_unit_t ul = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, {0}};
    bk_unit_t uc = ul, us = ul;
    uint64_t ld = 0, st = 0;
    bk_cp_t cp = {0, 0, 0, 0};
    bk_ring_init(&ring, bk_ring_rows(d, overlap));
    if ((d->flags & BITLET_FLAG_BIAS) && load_bias(bus, d, cyc) != BITLET_STATUS_OK)
        return BITLET_STATUS_BAD_FIELD;
    if (resident)
        *cyc += BITLET_DDR_LATENCY + load_weights(bus, d, 0u, d->cout, 0u, 1);
    group_starts(d, &gs);
    /* phase t: load unit t, compute unit t-1, store unit t-2 (overlapped),
     * or load, compute and store unit t (serial) */
    for (t = 0; t < units + (overlap ? 2u : 0u); t++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=4096
        uint64_t cp0 = cp.cyc, c;
        ld = st = 0;
        if (t < units) {
            unit_batch(d, &ul, (uint32_t)t, overlap);
            ld = load_unit(bus, d, &ring, &ul, resident);
        }
        if (!overlap)
            uc = ul;
        if (!overlap || (t >= 1u && t <= units)) {
            if (kind == BITLET_KIND_BITLET)
                compute_bitlet(d, &uc, &gs, resident, &cp);
            else
                compute_vendor(d, &uc, &gs, resident, &cp);
        }
        if (!overlap)
            us = uc;
        if (!overlap || t >= 2u)
            st = store_unit(bus, d, &us);
        c = cp.cyc - cp0;
        *cyc += overlap ? max3(ld, c, st) : ld + c + st;
        /* shift the pipeline: the loaded unit computes next, the computed
         * one is stored next */
        us = uc;
        uc = ul;
        if (t < units)
            next_unit(d, nb, &ul);
    }
    prof->pe = cp.cyc;
    prof->ref = kind == BITLET_KIND_BITLET ? cp.ref : 0u;
    prof->groups = cp.groups;
    prof->scan = cp.scan;
    return BITLET_STATUS_OK;
}

/* A clock stamp (START, END, REG_CLOCK).  Synthesis: the free-running
 * counter on the `timestamp` port (an ap_none input wire), read when the
 * stamp is taken; the pointer is volatile so that every stamp is its own read
 * of the port (UG1399 "Multi-Access Pointers on the Interface", "Volatile"),
 * not one value sampled at ap_start.  C simulation: the pointee does not
 * change during a call, so the stamp is the modelled clock, *timestamp +
 * `model` (the modelled cycles of the run before the stamp).
 * Test seam: BITLET_TB_LIVE_TIMESTAMP selects the synthesis path in a C build,
 * and BITLET_TIMESTAMP_READ(p) (default: a plain read of the port) is what a
 * testbench redefines to count the reads (hls/csim/tb_live_timestamp.h). */
#ifndef BITLET_TIMESTAMP_READ
#define BITLET_TIMESTAMP_READ(p) (*(p))
#endif

static uint64_t stamp(const volatile uint64_t *timestamp, uint64_t model)
{
#pragma HLS INLINE
#if defined(__SYNTHESIS__) || defined(BITLET_TB_LIVE_TIMESTAMP)
    (void)model;
    return BITLET_TIMESTAMP_READ(timestamp);
#else
    return *timestamp + model;
#endif
}

/* Fetch (one burst), check, run one instruction; returns its status and
 * its KERNEL_CYCLES in *cycles.  `model`: the modelled cycles of the run's
 * earlier instructions.  START is stamped before the fetch, END after the
 * instruction's last store (before its profile record is written). */
static uint32_t run_one(bk_bus_t *bus, int kind, uint64_t insn_addr, uint64_t prof_slot,
                        const volatile uint64_t *timestamp, uint64_t model, uint64_t *cycles)
{
#pragma HLS INLINE
    uint32_t w[BITLET_INSN_WORDS];
    uint32_t rec[BITLET_PROF_WORDS];
    bk_insn_t d;
    bk_prof_t prof = {0, 0, 0, 0, 0, 0, 0, 0};
    bk_sink_t k = sink(SINK_INSN, BITLET_FMT_FP32, 4u, 0u);
    uint64_t cyc = BITLET_INSN_OVERHEAD_CYCLES;
    uint64_t start = stamp(timestamp, model);
    uint32_t i, st;
    if (!bk_in_window(bus->base, bus->size, insn_addr, BITLET_INSN_BYTES, BITLET_AXI_BYTES)
        || (prof_slot && !bk_in_window(bus->base, bus->size, prof_slot, BITLET_PROF_BYTES,
                                       BITLET_AXI_BYTES)))
        return BITLET_STATUS_BUS_ERROR;
    bus->ddr = 0;
    k.insn = w;
    cyc += BITLET_DDR_LATENCY + rd_run(bus, insn_addr, BITLET_INSN_WORDS, &k);
    bk_decode(w, &d);
    if (d.op == BITLET_OP_NOP)
        st = BITLET_STATUS_OK;
    else if ((st = bk_validate(&d, kind)) == BITLET_STATUS_OK
             && (st = bk_check_extents(bus->base, bus->size, &d)) == BITLET_STATUS_OK
             && (st = bk_check_buffers(&d)) == BITLET_STATUS_OK)
        st = execute(bus, &d, kind, &prof, &cyc);
    prof.start = start;
    *cycles = cyc;
    if (st == BITLET_STATUS_OK) {
        prof.ddr = bus->ddr;
        prof.kernel = cyc;
        prof.end = stamp(timestamp, model + cyc);
    } else {
        prof = (bk_prof_t){0, 0, 0, 0, 0, 0, start, start};
    }
    if (prof_slot) {                  /* the record: whole beats (not counted) */
        uint64_t b0 = prof_slot / BITLET_AXI_BYTES, bt;
        bk_prof_record(rec, st, d.layer, &prof);
        for (bt = 0; bt < BITLET_PROF_BYTES / BITLET_AXI_BYTES; bt++) {
#pragma HLS PIPELINE II=1
            uint64_t wb[BK_WPB];
            for (i = 0; i < BK_WPB; i++) {
#pragma HLS UNROLL
                uint32_t at = (uint32_t)(bt * BK_WPB + i) * 2u;
                wb[i] = (uint64_t)rec[at] | ((uint64_t)rec[at + 1u] << 32);
            }
            wr_beat(bus, b0 + bt, wb);
        }
    }
    return st;
}

/* Inlined into each top, where `kind` is a constant: each IP synthesises
 * only its own datapath (compute_bitlet or compute_vendor). */
void bk_run(int kind, uint64_t *mem, uint64_t mem_base, uint32_t mem_size,
            uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
            const volatile uint64_t *timestamp,
            uint32_t *status, uint32_t *insn_done, uint32_t *id_magic,
            uint32_t *id_version, uint32_t *id_config, uint32_t *id_act_buf,
            uint32_t *id_wgt_buf, uint32_t *id_out_buf, uint64_t *clock)
{
#pragma HLS INLINE
    bk_bus_t bus;
    uint32_t i, st = BITLET_STATUS_OK;
    uint64_t model = 0;               /* modelled cycles of this run (C simulation stamps) */
    *id_magic = BITLET_MAGIC;
    *id_version = BITLET_ISA_VERSION;
    *id_config = bk_id_config(kind);
    *id_act_buf = BITLET_ACT_BUF_WORDS;
    *id_wgt_buf = BITLET_WGT_BUF_WORDS;
    *id_out_buf = BITLET_OUT_BUF_WORDS;
    bus.mem = mem;
    bus.base = mem_base;
    bus.size = mem_size;
    bus.ddr = 0;
    i = 0;
    if (mem_base % BITLET_AXI_BYTES || mem_size % BITLET_AXI_BYTES) {
        st = n_insn ? BITLET_STATUS_BUS_ERROR : BITLET_STATUS_OK;
        n_insn = 0;
    }
    for (i = 0; i < n_insn; i++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=256
        uint64_t slot = prof_addr ? prof_addr + (uint64_t)BITLET_PROF_BYTES * i : 0u;
        uint64_t cycles = 0;
        st = run_one(&bus, kind, prog_addr + (uint64_t)BITLET_INSN_BYTES * i, slot, timestamp,
                     model, &cycles);
        if (st != BITLET_STATUS_OK)
            break;
        model += cycles;
    }
    *status = st;
    *insn_done = i;
    *clock = stamp(timestamp, model);
}


void bitlet_top(uint64_t *mem, uint64_t mem_base, uint32_t mem_size,
                uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
                const volatile uint64_t *timestamp,
                uint32_t *status, uint32_t *insn_done,
                uint32_t *id_magic, uint32_t *id_version, uint32_t *id_config,
                uint32_t *id_act_buf, uint32_t *id_wgt_buf, uint32_t *id_out_buf,
                uint64_t *clock)
{
#pragma HLS INTERFACE mode=m_axi port=mem offset=slave bundle=gmem depth=BITLET_MAXI_DEPTH max_read_burst_length=256 max_write_burst_length=256 num_read_outstanding=4 num_write_outstanding=4
#pragma HLS INTERFACE mode=s_axilite port=mem_base bundle=control
#pragma HLS INTERFACE mode=s_axilite port=mem_size bundle=control
#pragma HLS INTERFACE mode=s_axilite port=prog_addr bundle=control
#pragma HLS INTERFACE mode=s_axilite port=n_insn bundle=control
#pragma HLS INTERFACE mode=s_axilite port=prof_addr bundle=control
#pragma HLS INTERFACE mode=ap_none port=timestamp
#pragma HLS INTERFACE mode=s_axilite port=status bundle=control
#pragma HLS INTERFACE mode=s_axilite port=insn_done bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_magic bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_version bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_config bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_act_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_wgt_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_out_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=clock bundle=control
#pragma HLS INTERFACE mode=s_axilite port=return bundle=control
#pragma HLS INTERFACE mode=ap_ctrl_hs port=return
#pragma HLS ARRAY_PARTITION variable=act_buf type=cyclic factor=64 dim=1
#pragma HLS BIND_STORAGE variable=act_buf type=ram_s2p impl=bram
#pragma HLS ARRAY_PARTITION variable=wgt_buf type=complete dim=1
#pragma HLS ARRAY_PARTITION variable=wgt_buf type=cyclic factor=8 dim=2
#pragma HLS BIND_STORAGE variable=wgt_buf type=ram_s2p impl=bram
#pragma HLS ARRAY_PARTITION variable=out_buf type=complete dim=1
#pragma HLS BIND_STORAGE variable=out_buf type=ram_t2p impl=bram
#pragma HLS ARRAY_PARTITION variable=bias_buf type=cyclic factor=8 dim=1
#pragma HLS BIND_STORAGE variable=bias_buf type=ram_s2p impl=bram
    bk_run(BITLET_KIND_BITLET, mem, mem_base, mem_size, prog_addr, n_insn, prof_addr,
           timestamp, status, insn_done, id_magic, id_version, id_config, id_act_buf,
           id_wgt_buf, id_out_buf, clock);
}

/* The same top-level argument list and interface pragmas as bitlet_top, on purpose:
 * one register map and one driver serve both IPs (hls/bitlet_top.h declares both). */
void vendor_fp_top(uint64_t *mem, uint64_t mem_base, uint32_t mem_size,
                   uint64_t prog_addr, uint32_t n_insn, uint64_t prof_addr,
                   const volatile uint64_t *timestamp,
                   uint32_t *status, uint32_t *insn_done,
                   uint32_t *id_magic, uint32_t *id_version, uint32_t *id_config,
                   uint32_t *id_act_buf, uint32_t *id_wgt_buf, uint32_t *id_out_buf,
                   uint64_t *clock)
{
#pragma HLS INTERFACE mode=m_axi port=mem offset=slave bundle=gmem depth=BITLET_MAXI_DEPTH max_read_burst_length=256 max_write_burst_length=256 num_read_outstanding=4 num_write_outstanding=4
#pragma HLS INTERFACE mode=s_axilite port=mem_base bundle=control
#pragma HLS INTERFACE mode=s_axilite port=mem_size bundle=control
#pragma HLS INTERFACE mode=s_axilite port=prog_addr bundle=control
#pragma HLS INTERFACE mode=s_axilite port=n_insn bundle=control
#pragma HLS INTERFACE mode=s_axilite port=prof_addr bundle=control
#pragma HLS INTERFACE mode=ap_none port=timestamp
#pragma HLS INTERFACE mode=s_axilite port=status bundle=control
#pragma HLS INTERFACE mode=s_axilite port=insn_done bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_magic bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_version bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_config bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_act_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_wgt_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=id_out_buf bundle=control
#pragma HLS INTERFACE mode=s_axilite port=clock bundle=control
#pragma HLS INTERFACE mode=s_axilite port=return bundle=control
#pragma HLS INTERFACE mode=ap_ctrl_hs port=return
#pragma HLS ARRAY_PARTITION variable=act_buf type=cyclic factor=64 dim=1
#pragma HLS BIND_STORAGE variable=act_buf type=ram_s2p impl=bram
#pragma HLS ARRAY_PARTITION variable=wgt_buf type=complete dim=1
#pragma HLS ARRAY_PARTITION variable=wgt_buf type=cyclic factor=8 dim=2
#pragma HLS BIND_STORAGE variable=wgt_buf type=ram_s2p impl=bram
#pragma HLS ARRAY_PARTITION variable=out_buf type=complete dim=1
#pragma HLS BIND_STORAGE variable=out_buf type=ram_t2p impl=bram
#pragma HLS ARRAY_PARTITION variable=bias_buf type=cyclic factor=8 dim=1
#pragma HLS BIND_STORAGE variable=bias_buf type=ram_s2p impl=bram
    bk_run(BITLET_KIND_VENDOR_FP, mem, mem_base, mem_size, prog_addr, n_insn, prof_addr,
           timestamp, status, insn_done, id_magic, id_version, id_config, id_act_buf,
           id_wgt_buf, id_out_buf, clock);
}
