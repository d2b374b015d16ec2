// tb_rtl_pe.cpp -- Verilator testbench of the RTL Bitlet PE (bitlet_pe.v).
//
// Replays every golden record (the files exported by hls/csim/export_golden.py,
// read with hls/csim/tb_golden.h) through the RTL, twice:
//   isolated      each group presented to an idle PE: result word and S equal
//                 the spec, latency (first clock of in_valid to the clock
//                 out_valid rises) = 24 + S (fp32) / 21 + S (fixed);
//   back to back  in_valid always high (the next group presented in the clock
//                 after the handshake), out_ready always high: results equal
//                 the spec, and the interval between the results of records
//                 i-1 and i equals S_i + 1 (the load clock plus S steps),
//                 the first one's latency as above;
//   stalled       back to back again, out_ready low on about 3 clocks in 8
//                 (a fixed pseudo-random sequence): results and acc in
//                 order (ap_continue of the blackbox may hold the output).
// Each record is also run through the blackbox's C model bitlet_pe_bb()
// (bitlet_pe_bb.c: the HLS C PE) with the 64-bit words read back from the
// RTL's input ports, which checks the blackbox's packing of the ports
// (result word, S and acc, the three outputs of the blackbox).
// The exact accumulator out_acc (55 bits, signed) is checked in both runs on
// every record: on the fixed records against the oracle's acc (spec_acc,
// tests/pyref.py via export_golden.py; the C model must give it too), on
// the fp32 records against the C model's (the oracle's fp32 acc is not
// exported: too slow).
// A mismatch names the file and the record.  Exit 0 when all pass, 1 on a
// mismatch, 2 on a usage or file error.
//
// Usage: tb_rtl_pe FILE.bin...
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "Vbitlet_pe.h"
#include "verilated.h"

#include "tb_golden.h"
#include "bitlet_pe_bb.h"

#define MAX_REPORT 10            /* mismatches printed per file and mode */
#define TIMEOUT    200           /* clocks without progress: a hang     */

static Vbitlet_pe *dut;
static uint64_t cycle;           /* posedges so far */
static std::vector<int64_t> want_acc;   /* per record of the file: the acc out_acc must show */

/* out_acc (ACW = 55 bits, two's complement) as an int64. */
static int64_t rtl_acc(void)
{
    const int acw = 55;
    return (int64_t)((uint64_t)dut->out_acc << (64 - acw)) >> (64 - acw);
}

static void tick(void)
{
    dut->clk = 0;
    dut->eval();
    dut->clk = 1;
    dut->eval();
    cycle++;
}

static void set_bits(uint32_t *words, unsigned lsb, unsigned width, uint32_t value)
{
    for (unsigned b = 0; b < width; b++) {
        unsigned bit = lsb + b;
        uint32_t m = 1u << (bit % 32);
        if ((value >> b) & 1u)
            words[bit / 32] |= m;
        else
            words[bit / 32] &= ~m;
    }
}

/* Drives record i of g onto the input ports (in_valid not touched). */
static void present(const golden_t *g, uint32_t i)
{
    size_t o = (size_t)i * BITLET_GROUP;
    uint64_t sig = 0;
    for (int k = 0; k < BITLET_GROUP; k++) {
        sig |= (uint64_t)(g->w_sig[o + k] & 1u) << k;
        set_bits(dut->in_w_exp.data(), 8 * k, 8, g->w_exp[o + k]);
        set_bits(dut->in_w_abs.data(), BITLET_SIG_BITS * k, BITLET_SIG_BITS, g->w_abs[o + k]);
        dut->in_a_word[k] = g->a_word[o + k];
    }
    dut->in_w_sig = sig;
    dut->in_isfix = g->isfix[i] ? 1 : 0;
    dut->in_prune = g->prune[i] & BITLET_PRUNE_ALL;
    dut->in_quant = g->quant[i];
}

/* The blackbox C model on the words now on the RTL's ports: result word, S, acc. */
static uint32_t c_model_result(uint32_t *scan, int64_t *acc)
{
    uint64_t w[65];
    int n = 0;
    w[n++] = dut->in_w_sig;
    for (int j = 0; j < 8; j++)
        w[n++] = (uint64_t)dut->in_w_exp[2 * j + 1] << 32 | dut->in_w_exp[2 * j];
    for (int j = 0; j < 24; j++)
        w[n++] = (uint64_t)dut->in_w_abs[2 * j + 1] << 32 | dut->in_w_abs[2 * j];
    for (int j = 0; j < 32; j++)
        w[n++] = (uint64_t)dut->in_a_word[2 * j + 1] << 32 | dut->in_a_word[2 * j];
    uint32_t ctrl = (uint32_t)dut->in_isfix | (uint32_t)dut->in_quant << 1
                    | (uint32_t)dut->in_prune << 6;
    uint32_t res = 0;
    bitlet_pe_bb_words(w, ctrl, &res, scan, acc);
    return res;
}

static int expected_latency(const golden_t *g, uint32_t i)
{
    return (g->isfix[i] ? BITLET_LAT_FIXED : BITLET_LAT_FP32) + g->scan[i];
}

static int check_result(const golden_t *g, uint32_t i, const char *path, const char *mode,
                        int *reported)
{
    int ok = dut->out_res == g->res[i] && (int)dut->out_scan == g->scan[i]
             && rtl_acc() == want_acc[i];
    if (!ok && (*reported)++ < MAX_REPORT)
        printf("MISMATCH (%s) %s #%u: res 0x%08X (spec 0x%08X) S %u (spec %d) acc %lld"
               " (%s %lld)\n", mode, path, i, dut->out_res, g->res[i], dut->out_scan,
               g->scan[i], (long long)rtl_acc(), g->acc_known[i] ? "spec" : "C model",
               (long long)want_acc[i]);
    return ok;
}

/* Each record alone on an idle PE.  Returns the records that pass. */
static long run_isolated(const golden_t *g, const char *path, int *reported)
{
    long passed = 0;
    for (uint32_t i = 0; i < g->n; i++) {
        int wait = 0;
        while (!dut->idle && wait++ < TIMEOUT)
            tick();
        present(g, i);
        dut->in_valid = 1;
        dut->eval();
        uint64_t start = cycle;
        int accepted = 0, ok = 0, latency = -1;
        uint32_t model_scan = 0;
        int64_t model_acc = 0;
        uint32_t model = c_model_result(&model_scan, &model_acc);
        want_acc[i] = g->acc_known[i] ? g->acc[i] : model_acc;
        for (int c = 0; c < TIMEOUT + 64; c++) {
            dut->clk = 0;
            dut->eval();
            if (!accepted && dut->in_ready)
                accepted = 1;                    /* handshake at this edge */
            dut->clk = 1;
            dut->eval();
            cycle++;
            if (accepted)
                dut->in_valid = 0;
            dut->eval();
            if (dut->out_valid) {
                latency = (int)(cycle - start);
                ok = check_result(g, i, path, "isolated", reported);
                break;
            }
        }
        if (model != g->res[i] || (int)model_scan != g->scan[i] || model_acc != want_acc[i]) {
            ok = 0;
            if ((*reported)++ < MAX_REPORT)
                printf("MISMATCH (blackbox C model) %s #%u: res 0x%08X (spec 0x%08X) S %u"
                       " (spec %d) acc %lld (spec %lld)\n", path, i, model, g->res[i],
                       model_scan, g->scan[i], (long long)model_acc, (long long)want_acc[i]);
        }
        if (latency != expected_latency(g, i)) {
            ok = 0;
            if ((*reported)++ < MAX_REPORT)
                printf("MISMATCH (isolated) %s #%u: latency %d (contract %d)\n", path, i,
                       latency, expected_latency(g, i));
        }
        tick();                                  /* out_ready = 1: taken */
        passed += ok;
    }
    return passed;
}

/* All records back to back.  stall = 0: out_ready always high, and the
 * latency of the first result and the interval between results are checked;
 * stall = 1: out_ready low on about 3 clocks in 8 (a fixed LCG), results
 * and acc in order, no timing.  Returns the records that pass. */
static long run_streamed(const golden_t *g, const char *path, int *reported, int stall)
{
    const char *mode = stall ? "stalled" : "back to back";
    std::vector<uint64_t> out_at(g->n, 0);
    std::vector<char> ok(g->n, 0);
    uint32_t next_in = 0, next_out = 0, lcg = 12345u;
    uint64_t start = cycle, last_progress = cycle;
    long passed = 0;
    int wait = 0;
    while (!dut->idle && wait++ < TIMEOUT)
        tick();
    start = cycle;
    if (g->n > 0) {
        present(g, 0);
        dut->in_valid = 1;
    }
    while (next_out < g->n && cycle - last_progress < TIMEOUT) {
        if (stall) {
            lcg = lcg * 1664525u + 1013904223u;
            dut->out_ready = ((lcg >> 24) & 7u) >= 3u;
        }
        dut->clk = 0;
        dut->eval();
        int hs = dut->in_valid && dut->in_ready;
        if (dut->out_valid && dut->out_ready) {  /* taken at this edge */
            out_at[next_out] = cycle;
            ok[next_out] = check_result(g, next_out, path, mode, reported);
            next_out++;
            last_progress = cycle;
        }
        dut->clk = 1;
        dut->eval();
        cycle++;
        if (hs) {
            next_in++;
            last_progress = cycle;
            if (next_in < g->n)
                present(g, next_in);             /* the very next clock */
            else
                dut->in_valid = 0;
            dut->eval();
        }
    }
    dut->out_ready = 1;
    if (next_out < g->n)
        printf("MISMATCH (%s) %s #%u: no result after %d clocks\n", mode, path, next_out,
               TIMEOUT);
    for (uint32_t i = 0; i < next_out; i++) {
        /* out_at is the clock index of the edge that takes the result; the
         * first result's latency counts from the first clock of in_valid */
        long got = i == 0 ? (long)(out_at[0] - start) : (long)(out_at[i] - out_at[i - 1]);
        long want = i == 0 ? expected_latency(g, 0) : g->scan[i] + 1;
        if (!stall && got != want) {
            ok[i] = 0;
            if ((*reported)++ < MAX_REPORT)
                printf("MISMATCH (back to back) %s #%u: %s %ld (contract %ld)\n", path, i,
                       i == 0 ? "latency" : "interval", got, want);
        }
        passed += ok[i];
    }
    return passed;
}

int main(int argc, char **argv)
{
    long total = 0, passed = 0;
    int status = 0;
    Verilated::commandArgs(1, argv);
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.bin...\n", argv[0]);
        return 2;
    }
    dut = new Vbitlet_pe;
    dut->out_ready = 1;
    dut->in_valid = 0;
    dut->rst = 1;
    for (int c = 0; c < 4; c++)
        tick();
    dut->rst = 0;
    tick();
    for (int a = 1; a < argc; a++) {
        golden_t g;
        int reported = 0;
        if (!load(argv[a], &g)) {
            fprintf(stderr, "ERROR: cannot read golden file %s (run export_golden.py)\n", argv[a]);
            release(&g);
            delete dut;
            return 2;
        }
        want_acc.assign(g.n, 0);
        long iso = run_isolated(&g, argv[a], &reported);   /* fills want_acc */
        long str = run_streamed(&g, argv[a], &reported, 0);
        long stl = run_streamed(&g, argv[a], &reported, 1);
        printf("%-44s %6ld/%u records pass isolated, %ld back to back, %ld stalled\n", argv[a],
               iso, g.n, str, stl);
        total += g.n;
        if (str < iso)
            iso = str;
        passed += stl < iso ? stl : iso;
        release(&g);
    }
    if (passed != total)
        status = 1;
    printf("%s: %ld/%ld records pass (%llu clocks)\n", status ? "FAIL" : "PASS", passed, total,
           (unsigned long long)cycle);
    dut->final();
    delete dut;
    return status;
}
