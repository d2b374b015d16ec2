// bitlet_pe_post.v -- reassembly and pack of the Bitlet PE.
//
// Takes the 24 column sums in the clock the engines hand them over (the next
// group's load clock) and returns the result word 19 clocks later:
//   r1..r5  acc = sum_g sum_g << g: a 5-level adder tree whose shifts are
//           wiring (12, 6, 3, 2, 1 nodes), exact in ACCW bits
//   r6      fp32: sign and |acc|;   fixed: floor(acc / 2^quant) (arithmetic
//           shift)
//   r7      fp32: leading-one index c;   fixed: exact saturation (F7)
//   r8      fp32: normalised significand and E = emax - 173 + c
//   r9      fp32: Inf / normal / subnormal (F2) word; the result word by
//           mode: prune = 0 -> +0 (F4), Inf/NaN operand -> 0x7FC00000 (F3)
//   r10..   DELAY clocks of the 32-bit word (contract latency: the published
//           RTL's 24 + S / 21 + S), then the output register.
// Every stage advances together when `adv` (the output is free); a stage
// holds a valid bit.  C model: bitlet_pe_finish() in hls/bitlet_pe.c.
`default_nettype none
module bitlet_pe_post #(
    parameter integer G     = 24,
    parameter integer SW    = 32,
    parameter integer SCW   = 7,      // width of S
    parameter integer DELAY = 11      // 20 registers from hand-over to output
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
    output wire              pending      // a group is in this pipeline
);
    localparam integer ACCW = SW + G;     // |acc| < 2^(SW+G-2)
    localparam integer NST  = 9 + DELAY;  // registers r1..r(9+DELAY)
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
    reg  [SCW+17-1:0] meta [1:9];
    integer i;
    always @(posedge clk)
        if (adv) begin
            meta[1] <= meta_in;
            for (i = 2; i <= 9; i = i + 1)
                meta[i] <= meta[i-1];
        end
    // meta fields of a stage
    `define EMAX(m)    m[8:0]
    `define ISFIX(m)   m[9]
    `define SPECIAL(m) m[10]
    `define QUANT(m)   m[15:11]
    `define PZ(m)      m[16]
    `define SCAN(m)    m[SCW+16:17]

    // ---- r1..r5: reassembly ------------------------------------------------
    reg signed [SW+1:0]  n1 [0:11];       // sum_{2j} + sum_{2j+1} << 1
    reg signed [SW+4:0]  n2 [0:5];        // << 2
    reg signed [SW+9:0]  n3 [0:2];        // << 4
    reg signed [SW+18:0] n4a;             // n3[0] + n3[1] << 8
    reg signed [SW+9:0]  n4b;             // n3[2], weight 2^16
    reg signed [ACCW-1:0] acc;
    integer j;
    always @(posedge clk)
        if (adv) begin
            for (j = 0; j < 12; j = j + 1)
                n1[j] <= $signed(sums[SW*(2*j) +: SW])
                         + ($signed(sums[SW*(2*j+1) +: SW]) <<< 1);
            for (j = 0; j < 6; j = j + 1)
                n2[j] <= n1[2*j] + (n1[2*j+1] <<< 2);
            for (j = 0; j < 3; j = j + 1)
                n3[j] <= n2[2*j] + (n2[2*j+1] <<< 4);
            n4a <= n3[0] + (n3[1] <<< 8);
            n4b <= n3[2];
            acc <= n4a + (n4b <<< 16);
        end

    // ---- r6..r9: pack -----------------------------------------------------
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
    wire signed [10:0] e7 = $signed({2'b00, `EMAX(meta[7])}) - 11'sd173
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
            q6    <= acc >>> `QUANT(meta[5]);
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
            word9 <= `PZ(meta[8])      ? 32'd0
                   : `ISFIX(meta[8])   ? fix8
                   : `SPECIAL(meta[8]) ? 32'h7FC00000
                   :                     fp_word;
        end

    // ---- r10..: delay to the contract latency, then the output -------------
    reg [31:0]    dword [1:DELAY];
    reg [SCW-1:0] dscan [1:DELAY];
    always @(posedge clk)
        if (adv) begin
            dword[1] <= word9;
            dscan[1] <= `SCAN(meta[9]);
            for (i = 2; i <= DELAY; i = i + 1) begin
                dword[i] <= dword[i-1];
                dscan[i] <= dscan[i-1];
            end
        end
    assign valid    = v[NST];
    assign pending  = |v;
    assign res      = dword[DELAY];
    assign res_scan = dscan[DELAY];

    `undef EMAX
    `undef ISFIX
    `undef SPECIAL
    `undef QUANT
    `undef PZ
    `undef SCAN
endmodule
`default_nettype wire
