// bitlet_pe.v -- the Bitlet PE (MICRO'21 microarchitecture), NUMERICS.md s.1-4.
//
// One group: 64 pairs (w_k, a_k), fp32 or fixed mode, a 24-bit prune mask
// and quant; one 32-bit result.  The same structure as the HLS C PE
// (hls/bitlet_pe.c, hls/README.md "The PE microarchitecture"):
//   bitlet_pe_pre     preprocess: exponent max tree, alignment, bit columns
//   bitlet_pe_engine  x G: the check-window column engines (one step a clock)
//   bitlet_pe_post    reassembly (shifted column sums, 3 a clock) and pack
//
// Handshake (valid/ready; ap_ctrl_chain in bitlet_pe_bb.v): the caller
// presents a group with in_valid and holds the in_* ports until in_ready
// (the PE reads them during preprocessing, so it keeps no input copy).  The
// result is out_res while out_valid; it is taken with out_ready.
//
// out_acc is the exact group accumulator acc = sum_k afix_k * (walign_k &
// prune) (NUMERICS.md s.3; fp32 mode: of the aligned significands, as the
// C PE's bitlet_pe_result_t.acc), 0 when prune = 0, valid with out_res.
// The kernel's fixed mode sums it (int64) instead of the packed word.  Its
// width ACW = 2G + log2(N) + 1 = 55 is the exact range: |afix_k| <= 2^G
// (F6: -(-2^24)), walign_k & prune <= 2^G - 1, so |acc| <= N 2^G (2^G - 1)
// < 2^(2G + log2 N), signed.
//
// Timing (tests/test_rtl_pe.py checks every golden record):
//   latency on an idle PE, from the first clock of in_valid to the clock
//   out_valid rises: 24 + S (fp32), 21 + S (fixed);
//   back to back (in_valid always, out_ready always): a group is loaded into
//   the engines every S + 1 clocks, so results follow each other at S + 1.
// Loads: fp32 after PF + 3 preprocess clocks, fixed after PF (PF = C - 1:
// the time-multiplexed alignment, bitlet_pe_pre.v).  PF <= 5 keeps the
// preprocess of the next group (<= 8 clocks) within the S >= 8 steps of a
// group with prune != 0.  A group with prune = 0 (S = 0) needs no
// preprocessing: it waits in a one-entry slot (its preprocess clocks counted
// down) so the group behind it is preprocessed meanwhile.
`default_nettype none
module bitlet_pe #(
    parameter integer N     = 64,     // pairs per group
    parameter integer W     = 8,      // check window
    parameter integer G     = 24,     // bit columns (the fp32 significand: 24)
    parameter integer C     = 6       // alignment chunks: 2 <= C <= 6 (see above)
) (
    input  wire              clk,
    input  wire              rst,     // synchronous, active high
    input  wire              in_valid,
    output wire              in_ready,
    input  wire [N-1:0]      in_w_sig,    // weight port format (NUMERICS s.2/3)
    input  wire [8*N-1:0]    in_w_exp,    // pair k at [8*k +: 8]
    input  wire [G*N-1:0]    in_w_abs,    // pair k at [G*k +: G]
    input  wire [32*N-1:0]   in_a_word,   // raw activation words
    input  wire              in_isfix,
    input  wire [G-1:0]      in_prune,
    input  wire [4:0]        in_quant,    // fixed mode, 0..24
    output wire              out_valid,
    input  wire              out_ready,
    output wire [31:0]       out_res,
    output wire [6:0]        out_scan,    // S of the group (observability)
    output wire [2*G+$clog2(N):0] out_acc, // acc of the group (signed, see below)
    output wire              idle
);
    localparam integer AW  = G + 2;                 // afix: |afix| <= 2^24
    localparam integer SW  = AW + $clog2(N);        // column sum
    localparam integer PW  = $clog2(N + W);         // engine pointer
    localparam integer SCW = 7;                     // S <= 64
    localparam integer PF  = C - 1;                 // fixed: clocks before the load
    localparam integer PP  = PF + 3;                // fp32: clocks before the load
    localparam integer DEPTH = 20 - PF;             // post registers: 21 + S fixed
    localparam integer ACW = 2 * G + $clog2(N) + 1; // out_acc: |acc| < 2^(2G+log2 N)

    // ---- control state -------------------------------------------------
    reg  [3:0]      pc;          // preprocess clock of the port group
    reg             z_valid;     // the prune = 0 slot holds a group
    reg  [3:0]      z_cnt;       // its preprocess clocks still to wait
    reg             e_active;    // the engines hold a group not handed over
    reg  [SCW-1:0]  scnt;        // steps of the group in the engines (S)
    reg  [8:0]      emax_c;      // that group's mode data
    reg             isfix_c, special_c, pz_c;
    reg  [4:0]      quant_c;

    wire [G-1:0]    done;
    wire            all_done  = &done;
    wire            busy      = e_active && !all_done;
    wire            adv;                             // output side can move
    wire            adding;                          // the reassembly adder is busy
    // hand-over: when the output side moves and, for a group with prune !=
    // 0, the reassembly adder is free (after an output stall it may not
    // be: the engines ran on while the pipeline stood still)
    wire            handoff   = e_active && all_done && adv && (pz_c || !adding);
    wire            eng_free  = !e_active || handoff;

    wire            pz_in     = (in_prune == {G{1'b0}});
    wire [3:0]      p_in      = in_isfix ? PF[3:0] : PP[3:0];   // clocks before the load
    wire            to_slot   = in_valid && pz_in && pc == 4'd0 && !z_valid;
    wire            port_grp  = in_valid && !to_slot;
    wire            slot_rdy  = z_valid && z_cnt == 4'd0;
    wire            port_rdy  = port_grp && !z_valid && pc == p_in;
    wire            load      = eng_free && (slot_rdy || port_rdy);
    wire            load_port = load && !slot_rdy;

    assign in_ready = to_slot || load_port;

    always @(posedge clk) begin
        if (rst) begin
            pc       <= 4'd0;
            z_valid  <= 1'b0;
            z_cnt    <= 4'd0;
            e_active <= 1'b0;
        end else begin
            // preprocess clocks of the group on the port: 0 .. p_in, held
            // at p_in until the load
            if (load_port)                        pc <= 4'd0;
            else if (port_grp && pc != p_in)      pc <= pc + 4'd1;
            // the prune = 0 slot: the preprocess clocks as if preprocessed
            if (to_slot) begin
                z_valid <= 1'b1;
                z_cnt   <= p_in - 4'd1;
            end else begin
                if (z_cnt != 4'd0) z_cnt <= z_cnt - 4'd1;
                if (load && slot_rdy) z_valid <= 1'b0;
            end
            if (load)         e_active <= 1'b1;
            else if (handoff) e_active <= 1'b0;
        end
    end

    // ---- preprocess -------------------------------------------------------
    wire [8:0]      pre_emax;
    wire            pre_special;
    wire [G*N-1:0]  pre_cols;
    wire [AW*N-1:0] pre_act;
    // the lanes align chunk c at clock p_in - PF + c of the port group
    wire [C-1:0] chunk;
    genvar c;
    generate
        for (c = 0; c < C; c = c + 1) begin : g_chunk
            assign chunk[c] = port_grp && pc == p_in - PF[3:0] + c;
        end
    endgenerate
    bitlet_pe_pre #(.N(N), .G(G), .AW(AW), .C(C)) u_pre (
        .clk(clk),
        .st0(port_grp && !in_isfix && pc == 4'd0),
        .st1(port_grp && !in_isfix && pc == 4'd1),
        .chunk(chunk),
        .w_sig(in_w_sig), .w_exp(in_w_exp), .w_abs(in_w_abs), .a_word(in_a_word),
        .isfix(in_isfix),
        .emax(pre_emax), .special(pre_special), .cols(pre_cols), .act(pre_act)
    );

    // ---- calculate: the activation registers and G column engines ----------
    reg [AW*N-1:0] act;
    always @(posedge clk) begin
        if (load_port)
            act <= pre_act;
        if (load) begin
            scnt      <= {SCW{1'b0}};
            emax_c    <= slot_rdy ? 9'd0 : (in_isfix ? 9'd0 : pre_emax);
            isfix_c   <= slot_rdy ? 1'b0 : in_isfix;
            special_c <= slot_rdy ? 1'b0 : (!in_isfix && pre_special);
            quant_c   <= slot_rdy ? 5'd0 : in_quant;
            pz_c      <= slot_rdy ? 1'b1 : pz_in;
        end else if (busy) begin
            scnt <= scnt + 1'b1;                      // one step a clock
        end
    end

    wire [G*SW-1:0] sums;
    genvar g;
    generate
        for (g = 0; g < G; g = g + 1) begin : g_engine
            bitlet_pe_engine #(.N(N), .W(W), .AW(AW), .SW(SW), .PW(PW)) u_engine (
                .clk(clk), .load(load), .en(!slot_rdy && in_prune[g]),
                .col_in(pre_cols[N*g +: N]), .act(act),
                .done(done[g]), .sum(sums[SW*g +: SW])
            );
        end
    endgenerate

    // ---- reassembly and pack ------------------------------------------------
    wire pending;
    bitlet_pe_post #(.G(G), .SW(SW), .SCW(SCW), .DEPTH(DEPTH), .ACW(ACW)) u_post (
        .clk(clk), .rst(rst), .adv(adv), .take(handoff), .sums(sums),
        .emax(emax_c), .isfix(isfix_c), .special(special_c), .quant(quant_c),
        .pz(pz_c), .scan(scnt),
        .valid(out_valid), .res(out_res), .res_scan(out_scan), .acc_out(out_acc),
        .pending(pending), .adding(adding)
    );
    assign adv  = !out_valid || out_ready;
    assign idle = !e_active && !z_valid && pc == 4'd0 && !pending;
endmodule
`default_nettype wire
