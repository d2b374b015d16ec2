// bitlet_pe_pre.v -- preprocess stage of the Bitlet PE.
//
// Reads the group from the input ports, which the caller holds until the
// load clock, so no wide input register is needed.  The alignment is
// time-multiplexed: L = ceil(N / C) alignment lanes (shift-amount
// subtractor and barrel shifter each) align the pairs in C chunks of L, one
// chunk a clock, the last one in the load clock (combinational into the
// engines), the others into a staging register.  fp32 mode, PF + 3 clocks
// before the load (PF = C - 1; hls/README.md "RTL PE"):
//   pc 0      esum_k = wexp_k + aexp_k; max tree levels 1..3 -> 8 partial
//             maxima; Inf/NaN operand flag (F3)
//   pc 1      max tree levels 4..6 -> emax
//   pc 2      (idle: keeps fp32 3 clocks behind fixed mode, NUMERICS s.4)
//   pc 3+c    chunk c: sh_k = emax - esum_k, walign_k = abs_k >> sh_k
//             (0 when sh_k >= 24); the last chunk in the load clock
// Fixed mode, PF clocks before the load: chunk c at pc c, walign_k = abs_k
// (F5: no alignment).  afix_k is unpacked combinationally as {neg, x} at
// the load.  The 24 bit columns are the transpose (wiring); prune is the
// engines' enables.  No negation here: the engines' column-sum adders add
// or subtract.  C model: bitlet_pe_preprocess() in hls/bitlet_pe.c (which
// aligns all pairs at once: the chunking is an RTL implementation choice
// with the same results and the same latency).
`default_nettype none
module bitlet_pe_pre #(
    parameter integer N  = 64,
    parameter integer G  = 24,        // bit columns = significand bits
    parameter integer AW = G + 2,     // afix width (signed; |afix| <= 2^24)
    parameter integer C  = 6          // alignment chunks (clocks)
) (
    input  wire              clk,
    input  wire              st0,     // fp32 pc 0: max tree levels 1..3
    input  wire              st1,     // fp32 pc 1: levels 4..6
    input  wire [C-1:0]      chunk,   // one-hot: the lanes align chunk c
    input  wire [N-1:0]      w_sig,
    input  wire [8*N-1:0]    w_exp,
    input  wire [G*N-1:0]    w_abs,
    input  wire [32*N-1:0]   a_word,
    input  wire              isfix,
    output reg  [8:0]        emax,    // valid from pc 2 (fp32)
    output reg               special, // valid from pc 1 (fp32)
    output wire [G*N-1:0]    cols,    // column g at [N*g +: N]; at the load
    output wire [AW*N-1:0]   act      // {neg_k, x_k} at [AW*k +: AW]
);
    localparam integer L   = (N + C - 1) / C;     // alignment lanes
    localparam integer NS  = (C - 1) * L;         // pairs in the staging register
    localparam integer SHW = $clog2(G + 1);       // shift amounts 0..G

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
    // (the levels of the exponent max tree are alike by design: one 2:1 max per
    // node, written out per level so the pipeline register sits after level 3)
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

    // ---- alignment lanes: in chunk c, lane m aligns pair c*L + m -----------
    // walign = abs >> (emax - esum) in fp32 (emax >= esum; 0 from a shift
    // of G on), abs in fixed mode (F5: the fp32 registers are ignored)
    wire [G*L-1:0] lane_out;
    genvar m, c;
    generate
        for (m = 0; m < L; m = m + 1) begin : g_lane
            // the lane's input: a C:1 AND-OR multiplexer on the one-hot chunk
            wire [G+8:0] in_c [0:C-1];                 // {esum, abs} of chunk c
            for (c = 0; c < C; c = c + 1) begin : g_in
                if (c * L + m < N) begin : g_pair
                    assign in_c[c] = {esum[c*L + m], w_abs[G*(c*L + m) +: G]}
                                     & {(G+9){chunk[c]}};
                end else begin : g_none
                    assign in_c[c] = {(G+9){1'b0}};
                end
            end
            reg [G+8:0] in_m;
            integer ci;
            always @* begin
                in_m = {(G+9){1'b0}};
                for (ci = 0; ci < C; ci = ci + 1)
                    in_m = in_m | in_c[ci];
            end
            wire [G-1:0]   abs_in = in_m[G-1:0];
            wire [8:0]     d      = emax - in_m[G+8:G];
            // 0 from a shift of 2^SHW on (shifts G .. 2^SHW - 1 give 0 anyway)
            wire           zero   = !isfix && (d[8:SHW] != 0);
            wire [SHW-1:0] s      = isfix ? {SHW{1'b0}} : d[SHW-1:0];
            assign lane_out[G*m +: G] = zero ? {G{1'b0}} : abs_in >> s;
        end
    endgenerate

    // ---- staging register (chunks 0..C-2) and the transpose --------------
    reg [G*NS-1:0] stage;            // walign of pair k < NS at [G*k +: G]
    integer sc;
    always @(posedge clk)
        for (sc = 0; sc < C - 1; sc = sc + 1)
            if (chunk[sc])
                stage[G*L*sc +: G*L] <= lane_out;
    wire [G*N-1:0] walign = {lane_out[G*(N-NS)-1:0], stage};   // pair k at [G*k +: G]
    generate
        for (k = 0; k < N; k = k + 1) begin : g_col
            genvar g;
            for (g = 0; g < G; g = g + 1) begin : g_bit
                assign cols[N*g + k] = walign[G*k + g];
            end
        end
    endgenerate
endmodule
`default_nettype wire
