// bitlet_pe_pre.v -- preprocess stage of the Bitlet PE.
//
// Reads the group from the input ports, which the caller holds until the
// load clock, so no wide input register is needed.  fp32 mode, three clocks
// before the load (hls/README.md "The PE microarchitecture"):
//   ph 0  esum_k = wexp_k + aexp_k; max tree levels 1..3 -> 8 partial maxima;
//         Inf/NaN operand flag (F3)
//   ph 1  max tree levels 4..6 -> emax
//   ph 2  shift amounts sh_k = min(emax - esum_k, 24)
//   load  (combinational into the engines) walign_k = abs_k >> sh_k, the
//         24 bit columns (prune: the engines' enables), afix_k unpacked
//         as {neg, x}.
// Fixed mode loads in ph 0: walign_k = abs_k (F5), afix_k = +-a_k (F6).
// No negation here: the engines' column-sum adders add or subtract.
// C model: bitlet_pe_preprocess() in hls/bitlet_pe.c.
`default_nettype none
module bitlet_pe_pre #(
    parameter integer N  = 64,
    parameter integer G  = 24,        // bit columns = significand bits
    parameter integer AW = G + 2      // afix width (signed; |afix| <= 2^24)
) (
    input  wire              clk,
    input  wire              st0,     // ph 0 -> 1 this clock (fp32)
    input  wire              st1,     // ph 1 -> 2
    input  wire              st2,     // ph 2 -> 3
    input  wire [N-1:0]      w_sig,
    input  wire [8*N-1:0]    w_exp,
    input  wire [G*N-1:0]    w_abs,
    input  wire [32*N-1:0]   a_word,
    input  wire              isfix,
    output reg  [8:0]        emax,    // valid from ph 2 (fp32)
    output reg               special, // valid from ph 1 (fp32)
    output wire [G*N-1:0]    cols,    // column g at [N*g +: N]
    output wire [AW*N-1:0]   act      // {neg_k, x_k} at [AW*k +: AW]
);
    localparam integer SHW = 5;       // shift amounts 0..24

    // ---- unpack (combinational from the ports) ----------------------------
    wire [8:0]  esum [0:N-1];
    wire [N-1:0] inf_nan;
    genvar k;
    generate
        for (k = 0; k < N; k = k + 1) begin : g_unpack
            wire [31:0] a    = a_word[32*k +: 32];
            wire [7:0]  ae   = a[30:23];
            wire [22:0] am   = a[22:0];
            wire [7:0]  we   = w_exp[8*k +: 8];
            // F1: a subnormal activation has exponent 1 and hidden bit 0
            wire [7:0]  aexp = (ae == 8'd0 && am != 23'd0) ? 8'd1 : ae;
            assign esum[k]    = {1'b0, we} + {1'b0, aexp};
            assign inf_nan[k] = (ae == 8'hFF) || (we == 8'hFF);
            // afix_k = neg ? -x : x, kept as {neg, x} (the engines' adders
            // subtract): fp32 x = hidden|mant, neg = wsig ^ asig; fixed x = a
            // (25-bit two's complement), neg = wsig (F6: -(-2^24) is exact)
            // (bits 22..0 are the word's in both modes: only the top differs)
            wire       neg  = isfix ? w_sig[k] : (w_sig[k] ^ a[31]);
            wire [1:0] top  = isfix ? {a[31], a[23]} : {1'b0, ae != 8'd0};
            assign act[AW*k +: AW] = {neg, top, am};          // AW = 26
        end
    endgenerate

    // ---- exponent maximum: a pairwise max tree, 3 levels per clock ---------
    function automatic [8:0] max2(input [8:0] a, input [8:0] b);
        max2 = (a > b) ? a : b;
    endfunction
    wire [8:0] l1 [0:N/2-1];
    wire [8:0] l2 [0:N/4-1];
    wire [8:0] l3 [0:N/8-1];
    generate
        for (k = 0; k < N/2; k = k + 1) begin : g_l1
            assign l1[k] = max2(esum[2*k], esum[2*k+1]);
        end
        for (k = 0; k < N/4; k = k + 1) begin : g_l2
            assign l2[k] = max2(l1[2*k], l1[2*k+1]);
        end
        for (k = 0; k < N/8; k = k + 1) begin : g_l3
            assign l3[k] = max2(l2[2*k], l2[2*k+1]);
        end
    endgenerate
    reg  [8:0] m3 [0:N/8-1];          // registers after level 3
    wire [8:0] l4 [0:N/16-1];
    wire [8:0] l5 [0:N/32-1];
    generate
        for (k = 0; k < N/16; k = k + 1) begin : g_l4
            assign l4[k] = max2(m3[2*k], m3[2*k+1]);
        end
        for (k = 0; k < N/32; k = k + 1) begin : g_l5
            assign l5[k] = max2(l4[2*k], l4[2*k+1]);
        end
    endgenerate
    wire [8:0] l6 = max2(l5[0], l5[1]);

    integer j;
    always @(posedge clk) begin
        if (st0) begin
            for (j = 0; j < N/8; j = j + 1)
                m3[j] <= l3[j];
            special <= |inf_nan;
        end
        if (st1)
            emax <= l6;
    end

    // ---- shift amounts (ph 2) and alignment at the load -------------------
    reg [SHW-1:0] sh [0:N-1];
    generate
        for (k = 0; k < N; k = k + 1) begin : g_align
            wire [8:0] d = emax - esum[k];             // emax >= esum_k
            always @(posedge clk)
                if (st2)
                    sh[k] <= (d >= G) ? G[SHW-1:0] : d[SHW-1:0];
            // F5: fixed mode never aligns (the shift registers are ignored)
            wire [SHW-1:0] s      = isfix ? {SHW{1'b0}} : sh[k];
            wire [G-1:0]   walign = w_abs[G*k +: G] >> s;
            // the transpose (wiring).  The prune mask is applied by the
            // engines: a pruned engine is done at its load and never reads
            // its column (the C model clears the column instead).
            genvar g;
            for (g = 0; g < G; g = g + 1) begin : g_col
                assign cols[N*g + k] = walign[g];
            end
        end
    endgenerate
endmodule
`default_nettype wire
