/*
 * bitlet_pe.c -- the Bitlet PE datapath: one 64-pair group (NUMERICS.md s.1-4).
 *
 * Synthesizable HLS-style C: fixed-width integer types, no dynamic memory, no
 * recursion, static loop bounds.  The stages are separate functions, as in
 * the hardware:
 *
 *   unpack      port values -> signed significands afix_k and exponents esum_k
 *   align       emax = max_k esum_k, walign_k = abs_k >> (emax - esum_k)
 *   accumulate  acc = sum_k afix_k * (walign_k & prune), exact (|acc| < 2^55)
 *   pack        acc -> fp32 word (truncating, subnormals kept) or fixed word
 *   scan        check-window scanner per enabled bit column -> S, col_steps
 *
 * Fixes of the contract implemented here (where the published RTL is wrong):
 *   F1 subnormal activation has hidden bit 0        (unpack_fp32)
 *   F2 E = 0 result shifts by one                    (pack_fp32)
 *   F3 any Inf/NaN operand -> 0x7FC00000            (bitlet_pe_group)
 *   F4 prune = 0 -> +0, S = 0, wins over F3         (bitlet_pe_group)
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
#define PE_COLS       BITLET_SIG_BITS                   /* 24 bit columns    */
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
/* unpack                                                               */
/* ------------------------------------------------------------------ */

/* fp32 mode: signed activation significands (afix), exponent sums (esum).
 * Returns 1 if any of the 128 operands is Inf or NaN (F3). */
static int unpack_fp32(const uint8_t w_sig[PE_N], const uint8_t w_exp[PE_N],
                       const uint32_t a_word[PE_N],
                       int32_t afix[PE_N], uint16_t esum[PE_N])
{
    int special = 0;
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
        afix[k] = ((w_sig[k] & 1u) ^ asig) ? -(int32_t)aman : (int32_t)aman;
        if (e == FP_EXP_MAX || w_exp[k] == FP_EXP_MAX)
            special = 1;
    }
    return special;
}

/* fixed mode: a_k is 25-bit two's complement (sign in bit 31, value in
 * bits 23..0); afix_k = wsig_k ? -a_k : a_k exactly (F6: -(-2^24) = 2^24). */
static void unpack_fixed(const uint8_t w_sig[PE_N], const uint32_t a_word[PE_N],
                         int32_t afix[PE_N])
{
    for (int k = 0; k < PE_N; k++) {
#pragma HLS UNROLL
        uint32_t a = a_word[k];
        int32_t value = (int32_t)(a & PE_SIG_MASK);
        if ((a >> FIX_SIGN_BIT) & 1u)
            value -= FIX_NEG;
        afix[k] = (w_sig[k] & 1u) ? -value : value;
    }
}

/* ------------------------------------------------------------------ */
/* align                                                                */
/* ------------------------------------------------------------------ */

/* emax over all 64 pairs: zero products included, prune ignored. */
static uint16_t max_exponent(const uint16_t esum[PE_N])
{
    uint16_t emax = 0;
    for (int k = 0; k < PE_N; k++) {
#pragma HLS UNROLL
        if (esum[k] > emax)
            emax = esum[k];
    }
    return emax;
}

/* walign_k = abs_k >> (emax - esum_k), truncating; 0 when the shift >= 24. */
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

/* ------------------------------------------------------------------ */
/* accumulate                                                           */
/* ------------------------------------------------------------------ */

/* acc = sum_k afix_k * (walign_k & prune), exact in 64 bits (< 2^55). */
static int64_t accumulate(const int32_t afix[PE_N], const uint32_t walign[PE_N],
                          uint32_t prune)
{
    int64_t acc = 0;
    for (int k = 0; k < PE_N; k++) {
#pragma HLS UNROLL
        acc += (int64_t)afix[k] * (int64_t)(walign[k] & prune);
    }
    return acc;
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
/* scan                                                                 */
/* ------------------------------------------------------------------ */

/* Check-window scanner over one 64-bit column (s.4): 8..64 steps. */
int bitlet_scan_steps(uint64_t col)
{
    int p = 0;
    int steps = 0;
    for (int step = 0; step < PE_N; step++) {
#pragma HLS LOOP_TRIPCOUNT min=8 max=64
#pragma HLS PIPELINE II=1
        if (p > PE_N - 1)
            break;
        uint32_t window = (uint32_t)(col >> p) & ((1u << BITLET_WINDOW) - 1u);
        int ones = 0;
        int second = -1;
        for (int i = 0; i < BITLET_WINDOW; i++) {
#pragma HLS UNROLL
            if ((window >> i) & 1u) {
                ones++;
                if (ones == 2)
                    second = i;
            }
        }
        steps++;
        p += (second >= 0) ? second : BITLET_WINDOW;
    }
    return steps;
}

/* Column g holds bit g of every aligned weight; S = max steps over the
 * enabled columns (0 if none).  col_steps[g] = 0 for pruned columns. */
static int32_t scan_group(const uint32_t walign[PE_N], uint32_t prune,
                          uint8_t col_steps[PE_COLS])
{
    int32_t S = 0;
    for (int g = 0; g < PE_COLS; g++) {
#pragma HLS UNROLL
        /* one scanner per bit column, all 24 running in parallel */
        uint64_t col = 0;
        int steps = 0;
        for (int k = 0; k < PE_N; k++) {
#pragma HLS UNROLL
            col |= (uint64_t)((walign[k] >> g) & 1u) << k;
        }
        if ((prune >> g) & 1u)
            steps = bitlet_scan_steps(col);
        col_steps[g] = (uint8_t)steps;
        if (steps > S)
            S = steps;
    }
    return S;
}

/* ------------------------------------------------------------------ */
/* the PE                                                               */
/* ------------------------------------------------------------------ */

int bitlet_pe_group(const uint8_t w_sig[64], const uint8_t w_exp[64],
                    const uint32_t w_abs[64], const uint32_t a_word[64],
                    int isfix, uint32_t prune, uint32_t quant,
                    bitlet_pe_result_t *r)
{
#pragma HLS ARRAY_PARTITION variable=w_sig type=complete
#pragma HLS ARRAY_PARTITION variable=w_exp type=complete
#pragma HLS ARRAY_PARTITION variable=w_abs type=complete
#pragma HLS ARRAY_PARTITION variable=a_word type=complete
    int32_t afix[PE_N];
    uint16_t esum[PE_N];
    uint32_t walign[PE_N];
#pragma HLS ARRAY_PARTITION variable=afix type=complete
#pragma HLS ARRAY_PARTITION variable=esum type=complete
#pragma HLS ARRAY_PARTITION variable=walign type=complete
    uint16_t emax = 0;
    int special = 0;

    if (isfix && quant > BITLET_QUANT_MAX)
        return -1;
    prune &= PE_SIG_MASK;
    if (isfix) {
        unpack_fixed(w_sig, a_word, afix);
        align_fixed(w_abs, walign);
    } else {
        special = unpack_fp32(w_sig, w_exp, a_word, afix, esum);
        emax = max_exponent(esum);
        align_fp32(w_abs, esum, emax, walign);
    }
    r->acc = accumulate(afix, walign, prune);
    r->emax = emax;
    r->scan = scan_group(walign, prune, r->col_steps);
    r->latency = (isfix ? BITLET_LAT_FIXED : BITLET_LAT_FP32) + r->scan;
    r->nan = 0;
    if (prune == 0u) {                       /* F4, wins over F3 */
        r->res = 0u;
    } else if (isfix) {
        r->res = pack_fixed(r->acc, quant);
    } else if (special) {                    /* F3 */
        r->res = BITLET_CANONICAL_NAN;
        r->nan = 1;
    } else {
        r->res = pack_fp32(r->acc, emax);
    }
    return 0;
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
