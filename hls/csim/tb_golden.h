/*
 * tb_golden.h -- the golden-record files of the C-simulation testbenches
 * (written by export_golden.py), shared by tb_pe_golden.c and tb_kernel.c.
 *
 * File layout, little-endian (as on x86 and ARM): magic "BLTGOLD2", uint32 n,
 * then w_sig[n][64] u8, w_exp[n][64] u8, w_abs[n][64] u32, a_word[n][64] u32,
 * isfix[n] u8, prune[n] u32, quant[n] u8, spec_res[n] u32,
 * spec_total_cycles[n] i32, spec_scan_cycles[n] i32, spec_col_steps[n][24] u8,
 * spec_acc_known[n] u8, spec_acc[n] i64 (the exact accumulator of the fixed
 * records, from tests/pyref.py; acc_known[i] = 0: not computed).
 */
#ifndef TB_GOLDEN_H
#define TB_GOLDEN_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitlet_hw.h"

#define MAGIC      "BLTGOLD2"
#define MAGIC_LEN  8

typedef struct {
    uint32_t n;
    uint8_t *w_sig, *w_exp, *isfix, *quant, *col_steps, *acc_known;
    uint32_t *w_abs, *a_word, *prune, *res;
    int32_t *total, *scan;
    int64_t *acc;
} golden_t;

static int read_array(FILE *f, void **dst, size_t count, size_t size)
{
    size_t bytes = count * size;
    *dst = malloc(bytes > 0 ? bytes : 1);
    return *dst != NULL && fread(*dst, size, count, f) == count;
}

/* Reads one exported file; 0 when it is missing, short, long or not ours. */
static int load(const char *path, golden_t *g)
{
    char magic[MAGIC_LEN];
    int ok;
    FILE *f = fopen(path, "rb");
    memset(g, 0, sizeof *g);
    if (f == NULL)
        return 0;
    ok = fread(magic, 1, MAGIC_LEN, f) == MAGIC_LEN
         && memcmp(magic, MAGIC, MAGIC_LEN) == 0
         && fread(&g->n, sizeof g->n, 1, f) == 1;
    if (ok) {
        size_t n = g->n, n64 = n * BITLET_GROUP;
        ok = read_array(f, (void **)&g->w_sig, n64, 1)
             && read_array(f, (void **)&g->w_exp, n64, 1)
             && read_array(f, (void **)&g->w_abs, n64, 4)
             && read_array(f, (void **)&g->a_word, n64, 4)
             && read_array(f, (void **)&g->isfix, n, 1)
             && read_array(f, (void **)&g->prune, n, 4)
             && read_array(f, (void **)&g->quant, n, 1)
             && read_array(f, (void **)&g->res, n, 4)
             && read_array(f, (void **)&g->total, n, 4)
             && read_array(f, (void **)&g->scan, n, 4)
             && read_array(f, (void **)&g->col_steps, n * BITLET_SIG_BITS, 1)
             && read_array(f, (void **)&g->acc_known, n, 1)
             && read_array(f, (void **)&g->acc, n, 8)
             && fgetc(f) == EOF;
    }
    fclose(f);
    return ok;
}

static void release(golden_t *g)
{
    free(g->w_sig); free(g->w_exp); free(g->w_abs); free(g->a_word);
    free(g->isfix); free(g->prune); free(g->quant); free(g->res);
    free(g->total); free(g->scan); free(g->col_steps); free(g->acc_known); free(g->acc);
}

#endif /* TB_GOLDEN_H */
