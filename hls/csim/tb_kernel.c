/*
 * tb_kernel.c -- C-simulation testbench of the kernel top bitlet_top()
 * (Vitis csim style: a self-checking main() returning 0 on success).
 *
 * Built with -DBITLET_TB_VENDOR it tests vendor_fp_top instead: the fp32
 * records and the convolution are then checked against the vendor kernel's
 * documented summation order and cycle formula (hls/README.md).
 *
 * Built with -DBITLET_RTL_PE (and hls/rtl/bitlet_pe_bb.c) it tests the RTL
 * PE build of bitlet_top, whose PE array calls the RTL blackbox
 * bitlet_pe_bb() (its C model here): every record (fixed mode summing the
 * blackbox's exact accumulator output) and the convolution as above, with
 * the same cycles, and ID_CONFIG reporting the fixed format.
 *
 * Built with -DBITLET_TB_LIVE_TIMESTAMP -include tb_live_timestamp.h, the
 * kernel takes the synthesis path of its clock stamps (a read of the
 * `timestamp` port per stamp) and each read returns the next value of a
 * counter (tb_live_timestamp.h): START and END of every record and the
 * clock output must then be exactly the reads in order (START before END,
 * two per instruction, the clock the last), every other field unchanged.
 *
 * 1. Golden replay through the instruction loop: every golden record
 *    (exported by export_golden.py) becomes one GEMM instruction
 *    (M = 1, K = 64, N = 1, its own prune and quant) of a single program per
 *    file, run by one call of bitlet_top() on a DDR image.  Checked per
 *    record: the output word (a layer adds the group result to +0.0, so
 *    -0 reads +0; fixed outputs are int32), and the profile record: status,
 *    S, PE-array cycles (S + 1 + latency fill), reference cycles
 *    (latency + 1), groups, DDR bytes and kernel cycles of the README model.
 * 2. A grouped 3x3 convolution with padding, stride and K tiling
 *    (FLAG_PARTIAL then FLAG_ACCUM) against a direct composition of
 *    bitlet_pe_group() calls and binary32 sums (NUMERICS.md s.5).
 * 3. ID outputs with n_insn = 0, and a bus error that writes nothing.
 *
 * Usage: tb_kernel FILE.bin...   (the files tb_pe_golden reads)
 * Returns 0 when everything passes, 1 on a mismatch, 2 on an unreadable file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitlet_hw.h"
#include "tb_golden.h"
#include "bitlet_pe.h"
#include "bitlet_top.h"

#define MAX_REPORT 10
#define MEM_BASE   0x20000000ull      /* a non-zero device base address */

typedef struct {
    uint32_t status, insn_done, magic, version, config, act, wgt, out;
    uint64_t clock;
} top_out_t;

#define TIMESTAMP 1000000ull          /* the free-running counter at the call */

/* The stamps a run must show: record i's START and END (`clock`: the modelled
 * clock at its fetch, `kc`: its KERNEL_CYCLES) and the clock output after
 * `n` instructions. */
#ifdef BITLET_TB_LIVE_TIMESTAMP
static uint64_t ts_reads;             /* reads of the port in this run */

uint64_t tb_timestamp_read(const volatile uint64_t *port)
{
    return *port + TB_TS_STEP * ts_reads++;
}
#define WANT_START(i, clock)     (TIMESTAMP + TB_TS_STEP * (2u * (uint64_t)(i)))
#define WANT_END(i, clock, kc)   (TIMESTAMP + TB_TS_STEP * (2u * (uint64_t)(i) + 1u))
#define WANT_CLOCK(n, clock)     (TIMESTAMP + TB_TS_STEP * (2u * (uint64_t)(n)))
#else
#define WANT_START(i, clock)     (clock)
#define WANT_END(i, clock, kc)   ((clock) + (kc))
#define WANT_CLOCK(n, clock)     (clock)
#endif

/* The top under test: bitlet_top, or vendor_fp_top with -DBITLET_TB_VENDOR. */
#ifdef BITLET_TB_VENDOR
#define TOP       vendor_fp_top
#define TOP_KIND  BITLET_KIND_VENDOR_FP
#define TOP_NAME  "vendor_fp_top"
#else
#define TOP       bitlet_top
#define TOP_KIND  BITLET_KIND_BITLET
#ifdef BITLET_RTL_PE
#define TOP_NAME  "bitlet_top (RTL PE build)"
#else
#define TOP_NAME  "bitlet_top"
#endif
#endif

/* Whether the top under test runs fixed-mode instructions. */
#if defined(BITLET_TB_VENDOR)
#define TOP_FIXED 0
#else
#define TOP_FIXED 1
#endif

/* Every `mem` buffer given to the top holds at least BITLET_MAXI_DEPTH 64-bit
 * words (C/RTL co-simulation copies that many), whatever window it spans.
 * The testbench fills it as 32-bit words (little-endian, as the device). */
static uint32_t *alloc_mem(uint32_t words)
{
    size_t w64 = (words + 1u) / 2u;
    return calloc(w64 > BITLET_MAXI_DEPTH ? w64 : BITLET_MAXI_DEPTH, 8);
}

/* words: the window in 32-bit words (a multiple of AXI_BYTES / 4). */
static void run_top(uint32_t *mem, uint32_t words, uint64_t prog, uint32_t n, uint64_t prof,
                    top_out_t *o)
{
    uint64_t timestamp = TIMESTAMP;
#ifdef BITLET_TB_LIVE_TIMESTAMP
    ts_reads = 0;
#endif
    TOP((uint64_t *)(void *)mem, MEM_BASE, words * 4u, prog, n, prof, &timestamp, &o->status,
        &o->insn_done, &o->magic, &o->version, &o->config, &o->act, &o->wgt, &o->out,
        &o->clock);
}

/* Cycles and bus bytes of a run of `bytes` at an AXI-aligned address (the
 * README model, written out: a sequence of one run). */
static uint64_t run_cycles(uint64_t bytes)
{
    uint64_t beats = (bytes + BITLET_AXI_BYTES - 1u) / BITLET_AXI_BYTES;
    uint64_t issue = BITLET_DDR_LATENCY / BITLET_DDR_OUTSTANDING;
    return BITLET_DDR_LATENCY + (beats > issue ? beats : issue);
}

static uint64_t run_bytes(uint64_t bytes)
{
    return (bytes + BITLET_AXI_BYTES - 1u) / BITLET_AXI_BYTES * BITLET_AXI_BYTES;
}

/* (tb_f32add.c has a bit-cast helper alike in shape: each testbench stands alone) */
static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* The vendor kernel's documented order for one 64-group (hls/README.md):
 * P interleaved partial sums in ascending k, then the pairwise tree. */
static float vendor_group(const uint32_t w[BITLET_GROUP], const uint32_t a[BITLET_GROUP])
{
    float s[BITLET_VENDOR_PARTIALS];
    uint32_t k, width, i;
    for (i = 0; i < BITLET_VENDOR_PARTIALS; i++)
        s[i] = 0.0f;
    for (k = 0; k < BITLET_GROUP; k++) {
        float prod = bits_float(w[k]) * bits_float(a[k]);
        s[k % BITLET_VENDOR_PARTIALS] = s[k % BITLET_VENDOR_PARTIALS] + prod;
    }
    for (width = BITLET_VENDOR_PARTIALS / 2u; width >= 1u; width /= 2u)
        for (i = 0; i < width; i++)
            s[i] = s[2u * i] + s[2u * i + 1u];
    return s[0];
}

/* Expected layer value of one group: +0.0 + group result, NaN canonical. */
static uint32_t float_out(float v)
{
    uint32_t u = float_bits(v);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu))
        return BITLET_CANONICAL_NAN;
    return u;
}

static uint32_t vendor_cycles(void)
{
    return BITLET_GROUP / BITLET_VENDOR_LANES + BITLET_VENDOR_MUL_LAT
           + BITLET_VENDOR_ADD_LAT * (BITLET_VENDOR_TREE_DEPTH + 3u);
}

/* Weight port (sig, exp, abs) -> an IEEE word with that port; 0 if none. */
static int port_to_word(uint8_t sig, uint8_t ex, uint32_t ab, int isfix, uint32_t *word)
{
    uint32_t s = (uint32_t)sig << 31;
    if (isfix) {
        *word = s | (ab & BITLET_PRUNE_MASK);
        return ab <= BITLET_PRUNE_MASK;
    }
    if (ex == 0 && ab == 0) {
        *word = s;
        return 1;
    }
    if (ex == 1 && ab != 0 && ab < (1u << 23)) {
        *word = s | ab;                               /* subnormal */
        return 1;
    }
    if (ex >= 1 && ab >= (1u << 23) && ab < (1u << 24)) {
        *word = s | (uint32_t)ex << 23 | (ab - (1u << 23));
        return 1;
    }
    return 0;
}

static int32_t fixed_value(uint32_t word)
{
    int32_t v = (int32_t)(word & BITLET_PRUNE_MASK);
    return (word >> 31) ? v - (1 << 24) : v;
}

static void put_insn(uint32_t *w, uint32_t op, uint32_t fmt, uint32_t flags, uint32_t prune,
                     uint32_t quant)
{
    memset(w, 0, BITLET_INSN_BYTES);
    w[BITLET_W_OP] = op | fmt << BITLET_WFMT_SHIFT | fmt << BITLET_AFMT_SHIFT
                     | fmt << BITLET_OFMT_SHIFT | flags << BITLET_FLAGS_SHIFT;
    w[BITLET_W_PRUNE] = prune | quant << BITLET_QUANT_SHIFT;
    w[BITLET_W_STRIDE] = 1u | 1u << BITLET_HALF_SHIFT;
    w[BITLET_W_DIL] = 1u | 1u << BITLET_HALF_SHIFT;
    w[BITLET_W_OHW] = 1u | 1u << BITLET_HALF_SHIFT;
    w[BITLET_W_N] = w[BITLET_W_IH] = w[BITLET_W_IW] = w[BITLET_W_COUT] = 1u;
    w[BITLET_W_KH] = w[BITLET_W_KW] = w[BITLET_W_GROUPS] = 1u;
    w[BITLET_W_CIN] = w[BITLET_W_IN_CSTRIDE] = BITLET_GROUP;
    w[BITLET_W_OUT_CSTRIDE] = 1u;
}

static void put_addr(uint32_t *w, int lo, uint64_t addr)
{
    w[lo] = (uint32_t)addr;
    w[lo + 1] = (uint32_t)(addr >> 32);
}

static uint64_t get64(const uint32_t *p, int lo)
{
    return (uint64_t)p[lo] | (uint64_t)p[lo + 1] << 32;
}

/* Per record: [insn 32][wgt 64][act 64][out 1 + pad 31] words; profile after
 * (every operand AXI-aligned; the 4-byte output is the first half of a beat). */
#define REC_WORDS (BITLET_INSN_WORDS + 2 * BITLET_GROUP + 32)

static int replay(const golden_t *g, const char *path, long *used, long *skipped)
{
    uint32_t words = g->n * (REC_WORDS + BITLET_PROF_WORDS) + 16u;
    uint64_t clock = TIMESTAMP;
    uint32_t *mem = alloc_mem(words);
    uint32_t *keep = calloc(g->n, sizeof *keep);
    uint32_t prog_words = g->n * BITLET_INSN_WORDS, data0 = prog_words;
    uint32_t prof0 = g->n * REC_WORDS, i, j;
    int bad = 0, reported = 0;
    top_out_t o;
    if (!mem || !keep)
        return 1;
    for (i = 0; i < g->n; i++) {                 /* records with an IEEE weight form */
        uint32_t *w = mem + i * BITLET_INSN_WORDS;
        uint32_t *wg = mem + data0 + i * (REC_WORDS - BITLET_INSN_WORDS);
        uint32_t *ac = wg + BITLET_GROUP, *out = ac + BITLET_GROUP;
        size_t o64 = (size_t)i * BITLET_GROUP;
        keep[i] = TOP_FIXED || !g->isfix[i];     /* vendor top: float only */
        for (j = 0; j < BITLET_GROUP; j++) {
            keep[i] &= port_to_word(g->w_sig[o64 + j], g->w_exp[o64 + j], g->w_abs[o64 + j],
                                    g->isfix[i], &wg[j]);
            ac[j] = g->isfix[i] ? (uint32_t)fixed_value(g->a_word[o64 + j]) : g->a_word[o64 + j];
        }
        put_insn(w, keep[i] ? BITLET_OP_GEMM : BITLET_OP_NOP,
                 g->isfix[i] ? BITLET_FMT_FIXED : BITLET_FMT_FP32, 0u, g->prune[i], g->quant[i]);
        put_addr(w, BITLET_W_WGT_LO, MEM_BASE + 4ull * (uint64_t)(wg - mem));
        put_addr(w, BITLET_W_ACT_LO, MEM_BASE + 4ull * (uint64_t)(ac - mem));
        put_addr(w, BITLET_W_OUT_LO, MEM_BASE + 4ull * (uint64_t)(out - mem));
        w[BITLET_W_MISC] = i << BITLET_LAYER_SHIFT;
        out[0] = 0xDEADBEEFu;
        *used += keep[i];
        *skipped += !keep[i];
    }
    run_top(mem, words, MEM_BASE, g->n, MEM_BASE + 4ull * prof0, &o);
    if (o.status != BITLET_STATUS_OK || o.insn_done != g->n) {
        printf("FAIL %s: status %u after %u of %u instructions\n", path, o.status, o.insn_done,
               g->n);
        free(mem); free(keep);
        return 1;
    }
    for (i = 0; i < g->n; i++) {
        const uint32_t *p = mem + prof0 + i * BITLET_PROF_WORDS;
        const uint32_t *out = mem + data0 + i * (REC_WORDS - BITLET_INSN_WORDS) + 2 * BITLET_GROUP;
        uint32_t want = g->res[i];
        /* fetch, weights (resident), the act row, the output: its beat read
         * (tail edge) and written whole; one unit, overlapped phases */
        uint64_t ddr = run_bytes(BITLET_INSN_BYTES) + 2u * run_bytes(BITLET_GROUP * 4u)
                       + 2u * BITLET_AXI_BYTES;
        /* LAT + one step: the load cycle + S, or the weight read if longer */
        uint64_t lat = (uint64_t)g->total[i] - (uint64_t)g->scan[i];
        uint64_t wrd = BITLET_GROUP / BITLET_WGT_BANKS;
        uint64_t pe = lat + ((uint64_t)g->scan[i] + 1u > wrd ? (uint64_t)g->scan[i] + 1u : wrd);
        uint64_t io = run_cycles(BITLET_INSN_BYTES) + 2u * run_cycles(BITLET_GROUP * 4u)
                      + (BITLET_DDR_LATENCY + 1u) + run_cycles(4u);   /* edge read, store */
        uint64_t kc;
        int ok;
        uint64_t scan = (uint64_t)g->scan[i], ref = (uint64_t)g->total[i] + 1u;
        if (!keep[i]) {                             /* a NOP: fetch only */
            kc = BITLET_INSN_OVERHEAD_CYCLES + run_cycles(BITLET_INSN_BYTES);
            bad |= get64(p, BITLET_P_KERNEL_CYCLES_LO) != kc
                   || get64(p, BITLET_P_START_LO) != WANT_START(i, clock)
                   || get64(p, BITLET_P_END_LO) != WANT_END(i, clock, kc);
            clock += get64(p, BITLET_P_KERNEL_CYCLES_LO);
            continue;
        }
        if (g->isfix[i])
            want = (uint32_t)fixed_value(want);
        else if (want == 0x80000000u)
            want = 0u;                                 /* +0.0 + -0 = +0 */
        if (TOP_KIND == BITLET_KIND_VENDOR_FP) {       /* fp32 records only */
            const uint32_t *wg = out - 2 * BITLET_GROUP;
            want = float_out(0.0f + vendor_group(wg, wg + BITLET_GROUP));
            pe = vendor_cycles();
            scan = ref = 0u;
        }
        kc = BITLET_INSN_OVERHEAD_CYCLES + io + pe;
        ok = out[0] == want && p[BITLET_P_STATUS] == BITLET_STATUS_OK
             && p[BITLET_P_LAYER] == i
             && get64(p, BITLET_P_SCAN_LO) == scan
             && get64(p, BITLET_P_GROUPS_LO) == 1u
             && get64(p, BITLET_P_PE_CYCLES_LO) == pe
             && get64(p, BITLET_P_REF_CYCLES_LO) == ref
             && get64(p, BITLET_P_DDR_BYTES_LO) == ddr
             && get64(p, BITLET_P_KERNEL_CYCLES_LO) == kc
             && get64(p, BITLET_P_START_LO) == WANT_START(i, clock)
             && get64(p, BITLET_P_END_LO) == WANT_END(i, clock, kc);
        clock += get64(p, BITLET_P_KERNEL_CYCLES_LO);
        if (!ok) {
            bad = 1;
            if (reported++ < MAX_REPORT)
                printf("MISMATCH %s #%u: out 0x%08X (want 0x%08X) S %llu (spec %d) pe %llu (%llu)"
                       " kernel %llu (%llu) ddr %llu (%llu) start %llu (%llu) end %llu (%llu)\n",
                       path, i, out[0], want, (unsigned long long)get64(p, BITLET_P_SCAN_LO),
                       g->scan[i], (unsigned long long)get64(p, BITLET_P_PE_CYCLES_LO),
                       (unsigned long long)pe,
                       (unsigned long long)get64(p, BITLET_P_KERNEL_CYCLES_LO),
                       (unsigned long long)kc,
                       (unsigned long long)get64(p, BITLET_P_DDR_BYTES_LO),
                       (unsigned long long)ddr,
                       (unsigned long long)get64(p, BITLET_P_START_LO),
                       (unsigned long long)WANT_START(i, clock),
                       (unsigned long long)get64(p, BITLET_P_END_LO),
                       (unsigned long long)WANT_END(i, clock, kc));
        }
    }
    if (o.clock != WANT_CLOCK(g->n, clock)) {
        printf("MISMATCH %s: REG_CLOCK %llu, want %llu\n", path, (unsigned long long)o.clock,
               (unsigned long long)WANT_CLOCK(g->n, clock));
        bad = 1;
    }
    free(mem);
    free(keep);
    return bad;
}

/* ------------------------------------------------------------------ */
/* A grouped convolution with K tiling vs a direct PE composition      */
/* ------------------------------------------------------------------ */
enum { CN = 1, CIH = 5, CIW = 6, CCIN = 16, CCOUT = 6, CKH = 3, CKW = 3, CG = 2,
       CSH = 2, CSW = 1, CPT = 1, CPL = 0, CPB = 2, CPR = 1 };
#define CCIN_G (CCIN / CG)
#define CK (CKH * CKW * CCIN_G)                 /* 72: two 64-groups */
#define CNKG ((CK + BITLET_GROUP - 1) / BITLET_GROUP)
#define COH ((CIH + CPT + CPB - CKH) / CSH + 1)
#define COW ((CIW + CPL + CPR - CKW) / CSW + 1)

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s;
}

#define CONV_WORDS 65536u

static int conv_check(void)
{
    uint32_t *mem = alloc_mem(CONV_WORDS);
    uint32_t x[CN * CIH * CIW * CCIN], w[CCOUT * CNKG * BITLET_GROUP];
    uint32_t seed = 12345u, i, t;
    uint32_t *prog, *xa, *wa, *oa;
    top_out_t o;
    int bad = 0;
    if (mem == NULL)
        return 1;
    prog = mem, xa = mem + 256, wa = mem + 2048, oa = mem + 12288;
    memset(w, 0, sizeof w);
    for (i = 0; i < CN * CIH * CIW * CCIN; i++)       /* ReLU-like activations */
        x[i] = (lcg(&seed) >> 30) ? float_bits((float)(lcg(&seed) % 1000) / 97.0f) : 0u;
    for (i = 0; i < CCOUT; i++)
        for (t = 0; t < CK; t++)
            w[i * CNKG * BITLET_GROUP + t] =
                float_bits(((float)(lcg(&seed) % 2001) - 1000.0f) / 3331.0f);
    memcpy(xa, x, sizeof x);
    memcpy(wa, w, sizeof w);
    for (t = 0; t < CNKG; t++) {                      /* one instruction per K group */
        uint32_t *in = prog + t * BITLET_INSN_WORDS;
        uint32_t flags = (t + 1 < CNKG ? BITLET_FLAG_PARTIAL : BITLET_FLAG_RELU)
                         | (t ? BITLET_FLAG_ACCUM : 0u);
        put_insn(in, BITLET_OP_CONV2D, BITLET_FMT_FP32, flags, BITLET_PRUNE_ALL, 0u);
        in[BITLET_W_IH] = CIH; in[BITLET_W_IW] = CIW;
        in[BITLET_W_CIN] = in[BITLET_W_IN_CSTRIDE] = CCIN;
        in[BITLET_W_COUT] = in[BITLET_W_OUT_CSTRIDE] = CCOUT;
        in[BITLET_W_KH] = CKH; in[BITLET_W_KW] = CKW; in[BITLET_W_GROUPS] = CG;
        in[BITLET_W_STRIDE] = CSH | CSW << BITLET_HALF_SHIFT;
        in[BITLET_W_PAD_TL] = CPT | CPL << BITLET_HALF_SHIFT;
        in[BITLET_W_PAD_BR] = CPB | CPR << BITLET_HALF_SHIFT;
        in[BITLET_W_OHW] = COH | COW << BITLET_HALF_SHIFT;
        in[BITLET_W_KG_BEGIN] = t;
        in[BITLET_W_KG_END] = t + 1;
        put_addr(in, BITLET_W_ACT_LO, MEM_BASE + 4u * 256u);
        put_addr(in, BITLET_W_WGT_LO, MEM_BASE + 4u * (2048u + t * CCOUT * BITLET_GROUP));
        put_addr(in, BITLET_W_OUT_LO, MEM_BASE + 4u * (t + 1 < CNKG ? 8192u : 12288u));
        put_addr(in, BITLET_W_ACC_LO, MEM_BASE + 4u * 8192u);
    }
    for (i = 0; i < CCOUT; i++)                       /* rows restricted to each tile */
        for (t = 0; t < CNKG; t++)
            memcpy(wa + (t * CCOUT + i) * BITLET_GROUP, w + (i * CNKG + t) * BITLET_GROUP,
                   BITLET_GROUP * 4);
    run_top(mem, CONV_WORDS, MEM_BASE, CNKG, 0u, &o);
    if (o.status != BITLET_STATUS_OK || o.insn_done != CNKG) {
        printf("FAIL conv: status %u, %u instructions done\n", o.status, o.insn_done);
        free(mem);
        return 1;
    }
#ifdef BITLET_TB_LIVE_TIMESTAMP
    /* no profile area: the stamps are read all the same (START, END, clock) */
    bad |= o.clock != WANT_CLOCK(CNKG, 0u);
#endif
    for (i = 0; i < COH * COW * CCOUT; i++) {
        uint32_t oy = i / (COW * CCOUT), ox = (i / CCOUT) % COW, co = i % CCOUT;
        uint32_t cg = co / (CCOUT / CG);
        float sum = 0.0f;
        for (t = 0; t < CNKG; t++) {
            uint8_t sg[BITLET_GROUP], ex[BITLET_GROUP];
            uint32_t ab[BITLET_GROUP], a[BITLET_GROUP], j;
            bitlet_pe_result_t r;
            for (j = 0; j < BITLET_GROUP; j++) {
                uint32_t k = t * BITLET_GROUP + j, tap = k / CCIN_G, ci = k % CCIN_G;
                int y = (int)(oy * CSH + tap / CKW) - CPT, xx = (int)(ox * CSW + tap % CKW) - CPL;
                a[j] = (k < CK && y >= 0 && y < CIH && xx >= 0 && xx < CIW)
                       ? x[((uint32_t)y * CIW + (uint32_t)xx) * CCIN + cg * CCIN_G + ci] : 0u;
                bitlet_weight_port(w[co * CNKG * BITLET_GROUP + k], 0, &sg[j], &ex[j], &ab[j]);
            }
            if (TOP_KIND == BITLET_KIND_VENDOR_FP) {
                sum = sum + vendor_group(w + (co * CNKG + t) * BITLET_GROUP, a);
            } else {
                bitlet_pe_group(sg, ex, ab, a, 0, BITLET_PRUNE_ALL, 0, &r);
                sum = sum + bits_float(r.res);
            }
        }
        if (!(sum > 0.0f))
            sum = 0.0f;
        if (oa[i] != float_bits(sum)) {
            if (bad++ < MAX_REPORT)
                printf("MISMATCH conv out %u: 0x%08X want 0x%08X\n", i, oa[i], float_bits(sum));
        }
    }
    printf("conv (grouped 3x3, stride, pad, K tiled): %s\n", bad ? "FAIL" : "pass");
    free(mem);
    return bad != 0;
}

static int ids_and_bus_error(void)
{
    uint32_t *mem = alloc_mem(1024u);
    top_out_t o;
    int bad = 0;
    if (mem == NULL)
        return 1;
    run_top(mem, 1024, MEM_BASE, 0u, 0u, &o);
    bad |= o.clock != WANT_CLOCK(0u, TIMESTAMP);
    bad |= o.status != BITLET_STATUS_OK || o.insn_done != 0u || o.magic != BITLET_MAGIC
           || o.version != BITLET_ISA_VERSION || o.act != BITLET_ACT_BUF_WORDS
           || ((o.config >> BITLET_CFG_KIND_SHIFT) & BITLET_CFG_KIND_MASK) != TOP_KIND
           || ((o.config >> BITLET_CFG_NPE_SHIFT) & BITLET_CFG_NPE_MASK) != BITLET_N_PE
           || ((o.config >> (BITLET_CFG_FMT_SHIFT + BITLET_FMT_FIXED)) & 1u) != TOP_FIXED;
    /* a fixed GEMM: runs on a top with fixed mode, else BAD_FIELD */
    put_insn(mem, BITLET_OP_GEMM, BITLET_FMT_FIXED, 0u, BITLET_PRUNE_ALL, 0u);
    put_addr(mem, BITLET_W_ACT_LO, MEM_BASE + 256u);
    put_addr(mem, BITLET_W_WGT_LO, MEM_BASE + 512u);
    put_addr(mem, BITLET_W_OUT_LO, MEM_BASE + 1024u);
    run_top(mem, 1024, MEM_BASE, 1u, 0u, &o);
    bad |= o.status != (TOP_FIXED ? BITLET_STATUS_OK : BITLET_STATUS_BAD_FIELD)
           || o.insn_done != (TOP_FIXED ? 1u : 0u);
    put_insn(mem, BITLET_OP_GEMM, BITLET_FMT_FP32, 0u, BITLET_PRUNE_ALL, 0u);
    mem[BITLET_W_COUT] = mem[BITLET_W_OUT_CSTRIDE] = 2u;
    put_addr(mem, BITLET_W_ACT_LO, MEM_BASE + 256u);
    put_addr(mem, BITLET_W_WGT_LO, MEM_BASE + 512u);
    put_addr(mem, BITLET_W_OUT_LO, MEM_BASE + 4092u);   /* 2nd output one word past the end */
    mem[1023] = 0xDEADBEEFu;
    run_top(mem, 1024, MEM_BASE, 1u, 0u, &o);
    bad |= o.status != BITLET_STATUS_BUS_ERROR || o.insn_done != 0u || mem[1023] != 0xDEADBEEFu;
    /* the failed instruction's START, then the clock: 2 reads (live) */
#ifdef BITLET_TB_LIVE_TIMESTAMP
    bad |= o.clock != TIMESTAMP + TB_TS_STEP;
#else
    bad |= o.clock != TIMESTAMP;
#endif
    printf("ID registers and bus error: %s\n", bad ? "FAIL" : "pass");
    free(mem);
    return bad;
}

int main(int argc, char **argv)
{
    long used = 0, skipped = 0;
    int bad = 0, a;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.bin...\n", argv[0]);
        return 2;
    }
    for (a = 1; a < argc; a++) {
        golden_t g;
        int file_bad;
        if (!load(argv[a], &g)) {
            fprintf(stderr, "ERROR: cannot read golden file %s (run export_golden.py)\n", argv[a]);
            release(&g);
            return 2;
        }
        file_bad = replay(&g, argv[a], &used, &skipped);
        printf("%-44s %s\n", argv[a], file_bad ? "FAIL" : "pass");
        bad |= file_bad;
        release(&g);
    }
    printf("golden replay through %s: %ld records as GEMM instructions, "
           "%ld skipped (no IEEE weight form, or fixed without a fixed mode)\n", TOP_NAME, used,
           skipped);
    bad |= conv_check();
    bad |= ids_and_bus_error();
#ifdef BITLET_TB_LIVE_TIMESTAMP
    printf("clock stamps: one read of the timestamp port each (synthesis path)\n");
#else
    printf("clock stamps: timestamp + modelled cycles (C simulation path)\n");
#endif
    printf("%s\n", bad ? "FAIL" : "PASS");
    return bad ? 1 : 0;
}
