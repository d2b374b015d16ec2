/*
 * tb_pe_golden.c -- C-simulation testbench of the Bitlet PE (Vitis csim style).
 *
 * Replays every golden record (exported by export_golden.py from
 * the .npz files of tests/data/golden) through bitlet_pe_group() and compares the result
 * word, the latency, S and the per-column scanner steps with the spec_*
 * fields of NUMERICS.md, and on the fixed records the exact accumulator
 * with the oracle's (tests/pyref.py, exported as spec_acc).  Each file is replayed forwards and then backwards:
 * the PE keeps no state between groups (fix F5), so the order cannot matter.
 * Then once more back to back through the stage interface (preprocess, load,
 * step while busy, finish), checking the issue interval S + 1.
 *
 * Usage: tb_pe_golden FILE.bin...
 * Returns 0 when every record of every file passes, 1 otherwise (as csim
 * expects from main()), 2 on an unreadable file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitlet_pe.h"
#include "tb_golden.h"

#define MAX_REPORT 10            /* mismatches printed per file */

/* Runs record i; returns 1 if it matches the spec, printing it otherwise. */
static int check_record(const golden_t *g, uint32_t i, const char *path, int *reported)
{
    size_t o = (size_t)i * BITLET_GROUP;
    bitlet_pe_result_t r;
    int ok = bitlet_pe_group(g->w_sig + o, g->w_exp + o, g->w_abs + o, g->a_word + o,
                             g->isfix[i], g->prune[i], g->quant[i], &r) == 0
             && r.res == g->res[i] && r.latency == g->total[i] && r.scan == g->scan[i]
             && memcmp(r.col_steps, g->col_steps + (size_t)i * BITLET_SIG_BITS,
                       BITLET_SIG_BITS) == 0
             && (!g->acc_known[i] || r.acc == g->acc[i]);
    if (!ok && (*reported)++ < MAX_REPORT)
        printf("MISMATCH %s #%u: res 0x%08X (spec 0x%08X) latency %d (spec %d) S %d (spec %d)"
               " acc %lld (spec %lld)\n", path, i, r.res, g->res[i], r.latency, g->total[i],
               r.scan, g->scan[i], (long long)r.acc,
               g->acc_known[i] ? (long long)g->acc[i] : (long long)r.acc);
    return ok;
}

/* Replays a file back to back through the stage interface, one clock per
 * load and per step (a kernel overlaps preprocess and finish with them):
 * the interval between the loads of records i-1 and i must be spec S + 1,
 * and each result as the spec says.  Returns the records that pass. */
static long stream_file(const golden_t *g, const char *path, int *reported)
{
    bitlet_pe_pre_t pre;
    bitlet_pe_calc_t c;
    bitlet_pe_result_t r;
    long cycle = 0, prev_load = 0, passed = 0;
    for (uint32_t i = 0; i < g->n; i++) {
        size_t o = (size_t)i * BITLET_GROUP;
        int ok = bitlet_pe_preprocess(g->w_sig + o, g->w_exp + o, g->w_abs + o,
                                      g->a_word + o, g->isfix[i], g->prune[i],
                                      g->quant[i], &pre) == 0;
        long interval;
        if (!ok)
            return passed;
        bitlet_pe_load(&pre, &c);                 /* the load clock */
        cycle++;
        interval = cycle - prev_load;
        prev_load = cycle;
        while (bitlet_pe_busy(&c)) {              /* one clock per step */
            bitlet_pe_step(&c);
            cycle++;
        }
        bitlet_pe_finish(&c, &r);
        ok = r.res == g->res[i]
             && memcmp(r.col_steps, g->col_steps + (size_t)i * BITLET_SIG_BITS,
                       BITLET_SIG_BITS) == 0
             && (i == 0 || interval == g->scan[i - 1] + 1);
        if (!ok && (*reported)++ < MAX_REPORT)
            printf("MISMATCH (streamed) %s #%u: res 0x%08X (spec 0x%08X) interval %ld"
                   " (spec S+1 of #%u)\n", path, i, r.res, g->res[i], interval, i ? i - 1 : 0);
        passed += ok;
    }
    return passed;
}

int main(int argc, char **argv)
{
    long total = 0, passed = 0;
    int status = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.bin...\n", argv[0]);
        return 2;
    }
    for (int a = 1; a < argc; a++) {
        golden_t g;
        int reported = 0;
        long forward = 0, backward = 0, streamed;
        if (!load(argv[a], &g)) {
            fprintf(stderr, "ERROR: cannot read golden file %s (run export_golden.py)\n", argv[a]);
            release(&g);
            return 2;
        }
        for (uint32_t i = 0; i < g.n; i++)            /* forwards        */
            forward += check_record(&g, i, argv[a], &reported);
        for (uint32_t i = g.n; i-- > 0;)              /* backwards (F5)  */
            backward += check_record(&g, i, argv[a], &reported);
        streamed = stream_file(&g, argv[a], &reported);
        printf("%-44s %6ld/%u records pass (reversed: %ld, streamed: %ld)\n",
               argv[a], forward, g.n, backward, streamed);
        total += g.n;
        if (backward < forward)
            forward = backward;
        passed += streamed < forward ? streamed : forward;   /* the worst */
        release(&g);
    }
    if (passed != total)
        status = 1;
    printf("%s: %ld/%ld records pass\n", status ? "FAIL" : "PASS", passed, total);
    return status;
}
