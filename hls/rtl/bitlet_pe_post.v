// bitlet_pe_post.v -- reassembly and pack of the Bitlet PE.
//
// Takes the 24 column sums in the clock the engines hand them over (the next
// group's load clock) and returns the result word DEPTH - 1 clocks later:
//   r1..rR  acc = sum_g sum_g << g, serially, K = 3 column sums a clock
//           from the top (R = G / K = 8 clocks): acc = (acc << K) + t_j,
//           t_j = sum_i sum_{Kj+i} << i, exact in ACCW bits.  The hand-over
//           clock adds the top triple and keeps the other sums in a hold
//           register.  A group with prune != 0 runs S >= 8 steps, so
//           hand-overs needing the adder come at least 9 clocks apart; a
//           prune = 0 group (all sums 0, result +0) leaves it alone.  When
//           the output stalls, the pipeline (and the adder) stops while the
//           engines finish the next group: its hand-over then waits for
//           `adding` to fall (bitlet_pe.v); without stalls it never waits.
//   rR+1    fp32: sign and |acc|;   fixed: floor(acc / 2^quant) (arithmetic
//           shift)
//   rR+2    fp32: leading-one index c;   fixed: exact saturation (F7)
//   rR+3    fp32: normalised significand and E = emax - 173 + c
//   rR+4    fp32: Inf / normal / subnormal (F2) word; the result word by
//           mode: prune = 0 -> +0 (F4), Inf/NaN operand -> 0x7FC00000 (F3)
//   ..      DELAY = DEPTH - R - 4 clocks of the 32-bit word (contract
//           latency: the published RTL's 24 + S / 21 + S), the last one the
//           output register.
// Beside the word, rR+1..rDEPTH carry acc itself (ACW bits, 0 for a
// prune = 0 group) to the output `acc_out`: the exact group accumulator the
// kernel's fixed mode sums (NUMERICS.md s.3).  A plain delay line (no reset,
// one enable): yosys maps it to SRL16E shift registers.
// Every stage advances together when `adv` (the output is free); a stage
// holds a valid bit.  C model: bitlet_pe_finish() in hls/bitlet_pe.c.
`default_nettype none
module bitlet_pe_post #(
    parameter integer G     = 24,
    parameter integer SW    = 32,
    parameter integer SCW   = 7,      // width of S
    parameter integer DEPTH = 15,     // registers from hand-over to output
    parameter integer ACW   = 55      // width of acc_out (exact range of acc)
) (
    input  wire              clk,
    input  wire              rst,
    input  wire              adv,         // the pipeline moves this clock
    input  wire              take,        // hand-over (only when adv)
    input  wire [G*SW-1:0]   sums,        // column sum g at [SW*g +: SW]
    input  wire [8:0]        emax,
    input  wire              isfix,
    input  wire              special,
    input  wire [4:0]        quant,
    input  wire              pz,          // prune == 0
    input  wire [SCW-1:0]    scan,
    output wire              valid,
    output wire [31:0]       res,
    output wire [SCW-1:0]    res_scan,
    output wire [ACW-1:0]    acc_out,     // acc of the group of res (signed)
    output wire              pending,     // a group is in this pipeline
    output wire              adding       // the reassembly adder is busy: a
                                          // group with prune != 0 must not
                                          // be taken (its sums would
                                          // overwrite acc and hold)
);
    localparam integer ACCW = SW + G;     // |acc| < 2^(SW+G-2)
    localparam integer K    = 3;          // column sums added a clock
    localparam integer R    = G / K;      // reassembly registers r1..rR
    localparam integer NST  = DEPTH;      // registers r1..rDEPTH
    localparam integer DELAY = DEPTH - R - 4;
    localparam [5:0]   TOP  = ACCW - 2;   // top bit of |acc|

    // ---- valid bits and the meta data (mode, emax, S) of each stage ---------
    reg [NST:1] v;
    always @(posedge clk) begin
        if (rst)
            v <= {NST{1'b0}};
        else if (adv)
            v <= {v[NST-1:1], take};
    end
    wire [SCW+17-1:0] meta_in = {scan, pz, quant, special, isfix, emax};
    reg  [SCW+17-1:0] meta [1:R+4];
    integer i;
    always @(posedge clk)
        if (adv) begin
            meta[1] <= meta_in;
            for (i = 2; i <= R + 4; i = i + 1)
                meta[i] <= meta[i-1];
        end
    // meta fields of a stage
    `define EMAX(m)    m[8:0]
    `define ISFIX(m)   m[9]
    `define SPECIAL(m) m[10]
    `define QUANT(m)   m[15:11]
    `define PZ(m)      m[16]
    `define SCAN(m)    m[SCW+16:17]

    // ---- r1..rR: reassembly, K column sums a clock ---------------------------
    reg  signed [SW-1:0]   hold [0:G-K-1];   // sums 0 .. G-K-1 of the group
    reg  [$clog2(R)-1:0]   rj;               // next triple to add: R-2 .. 0
    reg                    rbusy;            // triples left to add
    reg  signed [ACCW-1:0] acc;
    wire                   start = take && !pz;
    // the K sums of the triple added this clock: the top one from the
    // hand-over, triple rj from the hold register (an (R-1):1 multiplexer)
    reg  signed [SW-1:0]   tri_s [0:K-1];
    integer j, t;
    always @* begin
        for (t = 0; t < K; t = t + 1) begin
            tri_s[t] = $signed(sums[SW*(G-K+t) +: SW]);
            if (!start)
                for (j = 0; j < R - 1; j = j + 1)
                    if (rj == j) tri_s[t] = hold[K*j + t];
        end
    end
    wire signed [SW+K-1:0] tsum = tri_s[0] + (tri_s[1] <<< 1) + (tri_s[2] <<< 2);
    always @(posedge clk) begin
        if (rst)
            rbusy <= 1'b0;
        else if (adv) begin
            if (start) begin
                rbusy <= 1'b1;
                rj    <= R - 2;
            end else if (rbusy) begin
                if (rj == 0) rbusy <= 1'b0;
                rj <= rj - 1'b1;
            end
        end
        if (adv && start) begin
            acc <= tsum;
            for (j = 0; j < G - K; j = j + 1)
                hold[j] <= $signed(sums[SW*j +: SW]);
        end else if (adv && rbusy)
            acc <= (acc <<< K) + tsum;
    end

    // ---- rR+1..rR+4: pack (registers named by the old stage numbers 6..9) -----------------------------------------------------
    // fp32
    reg                  sign6, zero6;
    reg  [ACCW-2:0]      mag6;            // |acc| < 2^(ACCW-1)
    reg signed [ACCW-1:0] q6;             // fixed: acc >>> quant
    reg                  sign7, zero7;
    reg  [ACCW-2:0]      mag7;
    reg  [5:0]           c7;              // index of the leading 1 of |acc|
    reg  [31:0]          fix7;            // fixed result word
    reg                  sign8, zero8;
    reg  [23:0]          sig8;            // ((|acc| << 23) >> c) mod 2^24
    reg signed [10:0]    e8;              // E = emax - 173 + c
    reg  [31:0]          fix8;
    reg  [31:0]          word9;

    function automatic [5:0] msb_index(input [ACCW-2:0] x);
        integer b;
        begin
            msb_index = 6'd0;
            for (b = 0; b < ACCW - 1; b = b + 1)
                if (x[b]) msb_index = b[5:0];
        end
    endfunction

    localparam signed [ACCW-1:0] FIX_MAX = (1 <<< 24) - 1;
    localparam signed [ACCW-1:0] FIX_MIN = -(1 <<< 24);
    wire [ACCW-2:0] norm7 = mag7 << (TOP - c7);          // leading 1 at the top
    wire signed [10:0] e7 = $signed({2'b00, `EMAX(meta[R+2])}) - 11'sd173
                            + $signed({5'b0, c7});
    wire [5:0] sub_sh = 6'd1 - e8[5:0];                    // 1 - E when E <= 0
    wire [31:0] fp_word =
          zero8            ? 32'd0
        : (e8 > 11'sd254)  ? {sign8, 31'h7F800000}
        : (e8 >= 11'sd1)   ? {sign8, e8[7:0], sig8[22:0]}
        : (e8 < -11'sd22)  ? {sign8, 31'd0}                // shift >= 24
        :                    {sign8, 7'd0, sig8 >> sub_sh};

    always @(posedge clk)
        if (adv) begin
            // r6
            sign6 <= acc[ACCW-1];
            zero6 <= (acc == {ACCW{1'b0}});
            mag6  <= acc[ACCW-1] ? (~acc[ACCW-2:0] + 1'b1) : acc[ACCW-2:0];
            q6    <= acc >>> `QUANT(meta[R]);
            // r7
            sign7 <= sign6;
            zero7 <= zero6;
            mag7  <= mag6;
            c7    <= msb_index(mag6);
            fix7  <= (q6 > FIX_MAX) ? 32'h00FFFFFF
                   : (q6 < FIX_MIN) ? 32'h80000000
                   : {q6[ACCW-1], 7'd0, q6[23:0]};
            // r8
            sign8 <= sign7;
            zero8 <= zero7;
            sig8  <= norm7[ACCW-2 -: 24];
            e8    <= e7;
            fix8  <= fix7;
            // r9
            word9 <= `PZ(meta[R+3])      ? 32'd0
                   : `ISFIX(meta[R+3])   ? fix8
                   : `SPECIAL(meta[R+3]) ? 32'h7FC00000
                   :                     fp_word;
        end

    // ---- rR+1..rDEPTH: acc beside the word -----------------------------------
    // acc is final while its group is in rR (the last triple added in the
    // clock that moved it there); a prune = 0 group never started the
    // adder, so acc holds another group's value: its acc_out is 0
    reg [ACW-1:0] accd [R+1:DEPTH];
    always @(posedge clk)
        if (adv) begin
            accd[R+1] <= `PZ(meta[R]) ? {ACW{1'b0}} : acc[ACW-1:0];
            for (i = R + 2; i <= DEPTH; i = i + 1)
                accd[i] <= accd[i-1];
        end

    // ---- rR+5..: delay to the contract latency, then the output ------------
    reg [31:0]    dword [1:DELAY];
    reg [SCW-1:0] dscan [1:DELAY];
    always @(posedge clk)
        if (adv) begin
            dword[1] <= word9;
            dscan[1] <= `SCAN(meta[R+4]);
            for (i = 2; i <= DELAY; i = i + 1) begin
                dword[i] <= dword[i-1];
                dscan[i] <= dscan[i-1];
            end
        end
    assign valid    = v[NST];
    assign pending  = |v;
    assign adding   = rbusy;
    assign res      = dword[DELAY];
    assign res_scan = dscan[DELAY];
    assign acc_out  = accd[DEPTH];

    `undef EMAX
    `undef ISFIX
    `undef SPECIAL
    `undef QUANT
    `undef PZ
    `undef SCAN
endmodule
`default_nettype wire
