/*
 * bitlet_pe.c -- the Bitlet PE: one 64-pair group (NUMERICS.md s.1-4), written
 * as the Bitlet microarchitecture (hls/README.md "The PE microarchitecture").
 *
 * Synthesizable HLS-style C: fixed-width integer types, no dynamic memory, no
 * recursion, static loop bounds.  There is no multiplication of two data
 * operands anywhere: the products afix_k * walign_k are never formed; the
 * PE walks the set bits of the weights' bit columns and adds activations.
 *
 *   preprocess  unpack the ports (significands afix_k = neg_k ? -x_k : x_k,
 *               kept as x_k and the bit neg_k; exponent sums
 *               esum_k), emax by a pairwise max tree (6 levels), walign_k =
 *               abs_k >> (emax - esum_k) (barrel shifters), the 24 bit columns
 *               of 64 bits (column g: bit k = bit g of walign_k), pruned
 *               columns cleared.                       bitlet_pe_preprocess
 *   load        the 24 column engines take the columns and the activations,
 *               column sums cleared, pointers at 0 (a pruned engine: done).
 *                                                      bitlet_pe_load
 *   calculate   one step per clock (the loop in bitlet_pe_group, pipelined
 *               II=1; the 24 engines unrolled): each engine looks at the check
 *               window of 8 bits at its pointer, a priority encoder picks the
 *               first 1, the activation at that position is added into the
 *               column sum, the pointer moves to the second 1 (two or more 1s
 *               in the window) or by 8.  An engine is done after the step whose
 *               new pointer is > 63.  This is the scanner of NUMERICS.md s.4,
 *               so the number of steps is S.           bitlet_pe_step
 *   finish      reassembly acc = sum_g sum_g << g (shift and add, exact in
 *               64 bits), then pack to the fp32 or fixed result word.
 *                                                      bitlet_pe_finish
 *
 * Why it is exact: bit g of walign_k is 1 exactly when engine g adds afix_k
 * into sum_g, so sum_g = sum_k afix_k * bit_g(walign_k & prune) and
 * sum_g sum_g << g = sum_k afix_k * (walign_k & prune) = acc of NUMERICS.md.
 *
 * Fixes of the contract implemented here (where the published RTL is wrong):
 *   F1 subnormal activation has hidden bit 0        (unpack_fp32)
 *   F2 E = 0 result shifts by one                    (pack_fp32)
 *   F3 any Inf/NaN operand -> 0x7FC00000            (bitlet_pe_finish)
 *   F4 prune = 0 -> +0, S = 0, wins over F3         (load: no engine runs;
 *                                                    bitlet_pe_finish)
 *   F5 no state between groups; fixed mode does not align
 *   F6 -(-2^24) is exact                            (unpack_fixed)
 *   F7 exact saturation                             (pack_fixed)
 *
 * Field `nan` of the result is 1 when F3 forced the result to the canonical
 * NaN (an operand was Inf/NaN and prune != 0); `acc` and `emax` are always
 * the values computed as if every operand were a number.
 */
#include "bitlet_pe.h"

#define PE_N          BITLET_GROUP                      /* 64 pairs          */
#define PE_LEVELS     6                                 /* log2(PE_N)        */
#define PE_COLS       BITLET_SIG_BITS                   /* 24 bit columns    */
#define PE_WIN        BITLET_WINDOW                     /* check window: 8   */
#define PE_WIN_MASK   ((1u << BITLET_WINDOW) - 1u)
#define PE_PTR_DONE   PE_N        /* pointer of a done (or pruned) engine    */
#define PE_SIG_MASK   ((uint32_t)BITLET_PRUNE_MASK)     /* 24-bit port mask  */
#define FP_EXP_MAX    255u        /* biased exponent of Inf/NaN              */
#define FP_MANT_BITS  23
#define FP_MANT_MASK  0x7FFFFFu
#define FP_HIDDEN     0x800000u   /* 2^23                                    */
#define FP_SIGN       0x80000000u
#define FP_INF        0x7F800000u
/* E = emax - 173 + c: the product of two significands carries 2 x 23
 * fraction bits and two exponent biases (2 x 127 + 46 - 127 = 173). */
#define FP_PACK_BIAS  173
#define FIX_SIGN_BIT  31
#define FIX_MIN       (-((int64_t)1 << 24))             /* -2^24             */
#define FIX_MAX       (((int64_t)1 << 24) - 1)          /*  2^24 - 1         */
#define FIX_NEG       0x1000000                         /*  2^24 (a_word)    */
#define MAX_SHIFT     PE_COLS      /* alignment shifts >= 24 give 0          */

/* ------------------------------------------------------------------ */
/* preprocess: unpack                                                   */
/* ------------------------------------------------------------------ */

/* fp32 mode: activation significands as afix_k = neg_k ? -x_k : x_k (x_k =
 * aman_k, neg bit k = wsig_k ^ asig_k: no negation here, the engines' adders
 * subtract) and exponent sums (esum).  Returns 1 if any of the 128 operands
 * is Inf or NaN (F3). */
static int unpack_fp32(const uint8_t w_sig[PE_N], const uint8_t w_exp[PE_N],
                       const uint32_t a_word[PE_N],
                       int32_t x[PE_N], uint64_t *neg, uint16_t esum[PE_N])
{
    int special = 0;
    *neg = 0;
    for (int k = 0; k < PE_N; k++) {
#pragma HLS UNROLL
        uint32_t a = a_word[k];
        uint32_t asig = a >> 31;
        uint32_t e = (a >> FP_MANT_BITS) & FP_EXP_MAX;
        uint32_t mant = a & FP_MANT_MASK;
        /* F1: a subnormal activation keeps hidden bit 0 (IEEE). */
        uint32_t aexp = (e == 0u && mant != 0u) ? 1u : e;
        uint32_t aman = (e != 0u ? FP_HIDDEN : 0u) | mant;
        esum[k] = (uint16_t)((uint32_t)w_exp[k] + aexp);
        x[k] = (int32_t)aman;
        *neg |= (uint64_t)((w_sig[k] & 1u) ^ asig) << k;
        if (e == FP_EXP_MAX || w_exp[k] == FP_EXP_MAX)
            special = 1;
    }
    return special;
}

/* fixed mode: a_k is 25-bit two's complement (sign in bit 31, value in
 * bits 23..0); x_k = a_k, neg bit k = wsig_k, so afix_k = wsig_k ? -a_k : a_k
 * exactly (F6: -(-2^24) = 2^24, formed in the engines' 32-bit sums). */
static void unpack_fixed(const uint8_t w_sig[PE_N], const uint32_t a_word[PE_N],
                         int32_t x[PE_N], uint64_t *neg)
{
    *neg = 0;
    for (int k = 0; k < PE_N; k++) {
#pragma HLS UNROLL
        uint32_t a = a_word[k];
        int32_t value = (int32_t)(a & PE_SIG_MASK);
        if ((a >> FIX_SIGN_BIT) & 1u)
            value -= FIX_NEG;
        x[k] = value;
        *neg |= (uint64_t)(w_sig[k] & 1u) << k;
    }
}

/* ------------------------------------------------------------------ */
/* preprocess: exponent maximum, alignment, bit columns                 */
/* ------------------------------------------------------------------ */

/* emax over all 64 pairs (zero products included, prune ignored) by a
 * pairwise max tree: level l compares PE_N >> (l + 1) pairs of the level
 * before (64 -> 32 -> 16 -> 8 -> 4 -> 2 -> 1), 63 comparators in 6 levels. */
static uint16_t max_tree(const uint16_t esum[PE_N])
{
    uint16_t node[PE_N];
#pragma HLS ARRAY_PARTITION variable=node type=complete
    for (int k = 0; k < PE_N; k++) {
#pragma HLS UNROLL
        node[k] = esum[k];
    }
    for (int level = 0; level < PE_LEVELS; level++) {
#pragma HLS UNROLL
        /* in place: node k of this level reads nodes 2k and 2k+1 of the
         * level before, never an index below k already overwritten */
        for (int k = 0; k < PE_N / 2; k++) {
#pragma HLS UNROLL
            if (k < (PE_N >> (level + 1))) {     /* constant once unrolled */
                uint16_t a = node[2 * k], b = node[2 * k + 1];
                node[k] = a > b ? a : b;
            }
        }
    }
    return node[0];
}

/* walign_k = abs_k >> (emax - esum_k), truncating; 0 when the shift >= 24:
 * one barrel shifter per pair. */
static void align_fp32(const uint32_t w_abs[PE_N], const uint16_t esum[PE_N],
                       uint16_t emax, uint32_t walign[PE_N])
{
    for (int k = 0; k < PE_N; k++) {
#pragma HLS UNROLL
        uint32_t shift = (uint32_t)(emax - esum[k]);
        uint32_t abs_ = w_abs[k] & PE_SIG_MASK;
        walign[k] = shift >= MAX_SHIFT ? 0u : abs_ >> shift;
    }
}

/* F5: fixed mode does not align (no exponent state at all). */
static void align_fixed(const uint32_t w_abs[PE_N], uint32_t walign[PE_N])
{
    for (int k = 0; k < PE_N; k++) {
#pragma HLS UNROLL
        walign[k] = w_abs[k] & PE_SIG_MASK;
    }
}

/* The 24 bit columns (wiring only, a transpose) with the prune mask as an
 * AND: column g holds bit g of every aligned weight, 0 if g is pruned. */
static void bit_columns(const uint32_t walign[PE_N], uint32_t prune,
                        uint64_t col[PE_COLS])
{
    for (int g = 0; g < PE_COLS; g++) {
#pragma HLS UNROLL
        uint64_t c = 0;
        for (int k = 0; k < PE_N; k++) {
#pragma HLS UNROLL
            c |= (uint64_t)((walign[k] >> g) & (prune >> g) & 1u) << k;
        }
        col[g] = c;
    }
}

int bitlet_pe_preprocess(const uint8_t w_sig[64], const uint8_t w_exp[64],
                         const uint32_t w_abs[64], const uint32_t a_word[64],
                         int isfix, uint32_t prune, uint32_t quant,
                         bitlet_pe_pre_t *pre)
{
    uint16_t esum[PE_N];
    uint32_t walign[PE_N];
#pragma HLS ARRAY_PARTITION variable=esum type=complete
#pragma HLS ARRAY_PARTITION variable=walign type=complete
    uint16_t emax = 0;
    int special = 0;

    if (isfix && quant > BITLET_QUANT_MAX)
        return -1;
    prune &= PE_SIG_MASK;
    if (isfix) {
        unpack_fixed(w_sig, a_word, pre->act, &pre->neg);
        align_fixed(w_abs, walign);
    } else {
        special = unpack_fp32(w_sig, w_exp, a_word, pre->act, &pre->neg, esum);
        emax = max_tree(esum);
        align_fp32(w_abs, esum, emax, walign);
    }
    bit_columns(walign, prune, pre->col);
    pre->prune = prune;
    pre->emax = emax;
    pre->isfix = (uint8_t)(isfix != 0);
    pre->special = (uint8_t)special;
    pre->quant = (uint8_t)(isfix ? quant : 0u);
    return 0;
}

/* ------------------------------------------------------------------ */
/* calculate: 24 column engines                                         */
/* ------------------------------------------------------------------ */

void bitlet_pe_load(const bitlet_pe_pre_t *pre, bitlet_pe_calc_t *c)
{
    for (int k = 0; k < PE_N; k++) {
#pragma HLS UNROLL
        c->act[k] = pre->act[k];
    }
    c->neg = pre->neg;
    for (int g = 0; g < PE_COLS; g++) {
#pragma HLS UNROLL
        c->col[g] = pre->col[g];
        c->sum[g] = 0;
        c->ptr[g] = ((pre->prune >> g) & 1u) ? 0u : (uint8_t)PE_PTR_DONE;
        c->steps[g] = 0;
    }
    c->prune = pre->prune;
    c->emax = pre->emax;
    c->isfix = pre->isfix;
    c->special = pre->special;
    c->quant = pre->quant;
}

int bitlet_pe_busy(const bitlet_pe_calc_t *c)
{
    int busy = 0;
    for (int g = 0; g < PE_COLS; g++) {
#pragma HLS UNROLL
        busy |= c->ptr[g] <= PE_N - 1;               /* a 24-input OR      */
    }
    return busy;
}

/* Index of the lowest 1 of an 8-bit window (PE_WIN if none): a priority
 * encoder. */
static uint32_t first_one(uint32_t window)
{
    uint32_t idx = PE_WIN;
    for (int i = 0; i < PE_WIN; i++) {
#pragma HLS UNROLL
        if (((window >> i) & 1u) && idx == PE_WIN)
            idx = (uint32_t)i;
    }
    return idx;
}

/* One clock of one column engine.  A done engine holds.  Otherwise: the
 * window of 8 at the pointer (a 64:8 selector), the first 1 (priority
 * encoder) selects an activation {neg, x} (a 64:1 multiplexer) that the
 * column sum's adder adds or subtracts, and the pointer advances to the
 * second 1 (the priority encoder of the window without its first 1), or by
 * 8 when there is none. */
static void engine_step(uint64_t col, const int32_t act[PE_N], uint64_t neg,
                        int32_t *sum, uint8_t *ptr, uint8_t *steps)
{
    uint32_t p = *ptr;
    if (p > PE_N - 1)
        return;
    uint32_t window = (uint32_t)(col >> p) & PE_WIN_MASK;  /* zeros past 63 */
    uint32_t rest = window & (window - 1u);               /* first 1 cleared */
    uint32_t first = first_one(window);
    uint32_t second = first_one(rest);
    if (window != 0u) {
        uint32_t k = p + first;
        if ((neg >> k) & 1u)
            *sum -= act[k];
        else
            *sum += act[k];
    }
    *ptr = (uint8_t)(p + (rest != 0u ? second : PE_WIN));
    *steps = (uint8_t)(*steps + 1u);
}

int bitlet_pe_step(bitlet_pe_calc_t *c)
{
#pragma HLS INLINE
    for (int g = 0; g < PE_COLS; g++) {
#pragma HLS UNROLL
        engine_step(c->col[g], c->act, c->neg, &c->sum[g], &c->ptr[g], &c->steps[g]);
    }
    return bitlet_pe_busy(c);
}

/* ------------------------------------------------------------------ */
/* pack                                                                 */
/* ------------------------------------------------------------------ */

/* Index of the most significant 1 of x (x != 0): a priority encoder. */
static int msb_index(uint64_t x)
{
    int c = 0;
    for (int b = 0; b < 64; b++) {
#pragma HLS UNROLL
        if ((x >> b) & 1u)
            c = b;
    }
    return c;
}

/* fp32 pack, truncating (never rounds); subnormal results kept (F2). */
static uint32_t pack_fp32(int64_t acc, uint16_t emax)
{
    if (acc == 0)
        return 0u;
    uint32_t sign = acc < 0 ? FP_SIGN : 0u;
    uint64_t mag = acc < 0 ? (uint64_t)(-acc) : (uint64_t)acc;
    int c = msb_index(mag);
    int32_t E = (int32_t)emax - FP_PACK_BIAS + c;
    /* N = ((|acc| << 23) >> c) mod 2^24, without a 78-bit intermediate. */
    uint32_t N = (uint32_t)((c >= FP_MANT_BITS ? mag >> (c - FP_MANT_BITS)
                                               : mag << (FP_MANT_BITS - c))
                            & PE_SIG_MASK);
    if (E > (int32_t)FP_EXP_MAX - 1)
        return sign | FP_INF;
    if (E >= 1)
        return sign | ((uint32_t)E << FP_MANT_BITS) | (N & FP_MANT_MASK);
    /* F2: E = 0 shifts by one too; shifts >= 24 leave a signed zero. */
    int32_t shift = 1 - E;
    return sign | (shift >= PE_COLS ? 0u : N >> shift);
}

/* floor(acc / 2^quant) without relying on signed right shifts. */
static int64_t floor_shift(int64_t acc, uint32_t quant)
{
    if (acc >= 0)
        return (int64_t)((uint64_t)acc >> quant);
    uint64_t mag = (uint64_t)(-acc);
    uint64_t round_up = ((uint64_t)1 << quant) - 1u;
    return -(int64_t)((mag + round_up) >> quant);
}

/* fixed pack: r = floor(acc / 2^quant) saturated exactly (F7) to
 * [-2^24, 2^24-1]; word = sign(r) << 31 | (r mod 2^24). */
static uint32_t pack_fixed(int64_t acc, uint32_t quant)
{
    int64_t r = floor_shift(acc, quant);
    if (r > FIX_MAX)
        r = FIX_MAX;
    if (r < FIX_MIN)
        r = FIX_MIN;
    uint32_t sign = r < 0 ? FP_SIGN : 0u;
    return sign | ((uint32_t)(uint64_t)r & PE_SIG_MASK);
}

/* ------------------------------------------------------------------ */
/* finish: reassembly and pack                                          */
/* ------------------------------------------------------------------ */

/* acc = sum_g sum_g << g: shifts (wiring) and an adder tree; exact, since
 * |sum_g| <= 2^30 and |acc| < 2^55. */
static int64_t reassemble(const int32_t sum[PE_COLS])
{
    int64_t acc = 0;
    for (int g = 0; g < PE_COLS; g++) {
#pragma HLS UNROLL
        acc += (int64_t)((uint64_t)(int64_t)sum[g] << g);
    }
    return acc;
}

/* Fills res, acc, emax, nan and col_steps; scan and latency are the cycles
 * the caller counted (bitlet_pe_group: its step loop). */
void bitlet_pe_finish(const bitlet_pe_calc_t *c, bitlet_pe_result_t *r)
{
    r->acc = reassemble(c->sum);
    r->emax = c->emax;
    for (int g = 0; g < PE_COLS; g++) {
#pragma HLS UNROLL
        r->col_steps[g] = c->steps[g];
    }
    r->nan = 0;
    if (c->prune == 0u) {                    /* F4, wins over F3 */
        r->res = 0u;
    } else if (c->isfix) {
        r->res = pack_fixed(r->acc, c->quant);
    } else if (c->special) {                 /* F3 */
        r->res = BITLET_CANONICAL_NAN;
        r->nan = 1;
    } else {
        r->res = pack_fp32(r->acc, c->emax);
    }
}

/* ------------------------------------------------------------------ */
/* the PE: the stages composed                                          */
/* ------------------------------------------------------------------ */

int bitlet_pe_group(const uint8_t w_sig[64], const uint8_t w_exp[64],
                    const uint32_t w_abs[64], const uint32_t a_word[64],
                    int isfix, uint32_t prune, uint32_t quant,
                    bitlet_pe_result_t *r)
{
    bitlet_pe_pre_t pre;
    bitlet_pe_calc_t c;
    int32_t S = 0;

    if (bitlet_pe_preprocess(w_sig, w_exp, w_abs, a_word, isfix, prune, quant, &pre) != 0)
        return -1;
    bitlet_pe_load(&pre, &c);
    /* The calculate stage: the only loop whose trip count is data (S). */
    int busy = bitlet_pe_busy(&c);
    while (busy) {
#pragma HLS LOOP_TRIPCOUNT min=8 max=64
#pragma HLS PIPELINE II=1
        busy = bitlet_pe_step(&c);
        S++;
    }
    bitlet_pe_finish(&c, r);
    r->scan = S;
    r->latency = (isfix ? BITLET_LAT_FIXED : BITLET_LAT_FP32) + S;
    return 0;
}

/* Steps of the check-window scanner over one 64-bit column (s.4): the
 * specification of one engine's step count, kept for the tests and the
 * fast emulator's cross-checks.  The PE does not call it: its S is the
 * number of iterations of its step loop. */
int bitlet_scan_steps(uint64_t col)
{
    int p = 0;
    int steps = 0;
    for (int step = 0; step < PE_N; step++) {
        if (p > PE_N - 1)
            break;
        uint32_t window = (uint32_t)(col >> p) & PE_WIN_MASK;
        int ones = 0;
        int second = -1;
        for (int i = 0; i < PE_WIN; i++) {
            if ((window >> i) & 1u) {
                ones++;
                if (ones == 2)
                    second = i;
            }
        }
        steps++;
        p += (second >= 0) ? second : PE_WIN;
    }
    return steps;
}

void bitlet_weight_port(uint32_t w_word, int isfix,
                        uint8_t *sig, uint8_t *exp, uint32_t *abs_)
{
    uint32_t e = (w_word >> FP_MANT_BITS) & FP_EXP_MAX;
    uint32_t mant = w_word & FP_MANT_MASK;
    *sig = (uint8_t)(w_word >> 31);
    if (isfix) {                             /* sign << 31 | abs */
        *exp = 0;
        *abs_ = w_word & PE_SIG_MASK;
    } else if (e != 0u) {                    /* normal, Inf, NaN */
        *exp = (uint8_t)e;
        *abs_ = FP_HIDDEN | mant;
    } else if (mant != 0u) {                 /* subnormal */
        *exp = 1;
        *abs_ = mant;
    } else {                                 /* +-0 */
        *exp = 0;
        *abs_ = 0;
    }
}

void bitlet_weight_port_batch(int64_t n, const uint32_t *w_word, int isfix,
                              uint8_t *sig, uint8_t *exp, uint32_t *abs_)
{
    for (int64_t i = 0; i < n; i++)
        bitlet_weight_port(w_word[i], isfix, sig + i, exp + i, abs_ + i);
}

int bitlet_pe_group_batch(int64_t n, const uint8_t *w_sig, const uint8_t *w_exp,
                          const uint32_t *w_abs, const uint32_t *a_word,
                          const uint8_t *isfix, const uint32_t *prune,
                          const uint8_t *quant, bitlet_pe_result_t *out)
{
    /* Validate every record first: nothing is written on error. */
    for (int64_t i = 0; i < n; i++) {
        if (isfix[i] && quant[i] > BITLET_QUANT_MAX)
            return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t o = i * PE_N;
        bitlet_pe_group(w_sig + o, w_exp + o, w_abs + o, a_word + o,
                        isfix[i] != 0, prune[i], quant[i], out + i);
    }
    return 0;
}
