// bitlet_pe_engine.v -- one column engine of the Bitlet PE (calculate stage).
//
// Walks the set bits of one 64-bit weight bit column with the check window
// of NUMERICS.md s.4.  Each clock while not done: the window col[ptr +: W]
// (zeros past the top), a priority encoder picks its first 1, the activation
// at that position is added into the column sum, and the pointer moves to
// the second 1 of the window (two or more 1s) or by W.  The engine is done
// once its pointer is past the column (ptr >= N).  The hls/ C model of this
// engine is engine_step() in hls/bitlet_pe.c.
//
// Hardware per engine: N-bit column register, pointer register, column-sum
// register; a W-bit window selector (two levels of W:1 multiplexers), two
// W-input priority encoders, a pointer adder, an N:1 activation multiplexer
// (a tree of 4:1 multiplexers, one LUT6 each) and an add/subtract column sum
// adder.  No DSP.  The activation multiplexer is most of the engine (26 x 21
// LUT6 of its ~700 on 7-series, yosys): hls/README.md "RTL PE".
`default_nettype none
module bitlet_pe_engine #(
    parameter integer N  = 64,        // pairs per group (column length; a power of 4)
    parameter integer W  = 8,         // check window
    parameter integer AW = 26,        // activation width (signed)
    parameter integer SW = 32,        // column-sum width (signed)
    parameter integer PW = 7          // pointer width: 0..N+W-1
) (
    input  wire                 clk,
    input  wire                 load,      // take a new column (engine enabled: en)
    input  wire                 en,        // prune bit of this column
    input  wire [N-1:0]         col_in,
    input  wire [N*AW-1:0]      act,       // the PE's activation registers {neg, x}
    output wire                 done,
    output reg  signed [SW-1:0] sum
);
    reg  [N-1:0]  col;
    reg  [PW-1:0] ptr;

    assign done = (ptr >= N);

    // the check window at the pointer (bits past N-1 read as 0), in two
    // levels of W:1 multiplexers (ptr = W*q + r): the 2W-bit chunk at W*q,
    // then W bits of it at r.  3W W:1 multiplexers instead of W N:1.
    localparam integer LN = $clog2(N);
    localparam integer LW = $clog2(W);
    wire [N+W-1:0]   col_ext = {{W{1'b0}}, col};
    wire [LN-LW-1:0] q       = ptr[LN-1:LW];      // ptr < N while not done
    wire [LW-1:0]    r       = ptr[LW-1:0];
    wire [2*W-1:0]   chunk   = col_ext[W*q +: 2*W];
    wire [W-1:0]     window  = chunk[r +: W];
    wire [W-1:0]   rest    = window & (window - 1'b1);   // first 1 cleared

    // priority encoders: index of the lowest 1 (W when none)
    function automatic [PW-1:0] first_one(input [W-1:0] x);
        integer i;
        begin
            first_one = W;
            for (i = W - 1; i >= 0; i = i - 1)
                if (x[i]) first_one = i;
        end
    endfunction
    wire [PW-1:0] first  = first_one(window);
    wire [PW-1:0] second = first_one(rest);

    // the selected activation: an N:1 multiplexer, a tree of 4:1
    // multiplexers on sel (N = 4^LV; heap order: node i has children
    // 4i+1 .. 4i+4, leaf k is node (N-1)/3 + k; a node at depth d selects on
    // the pair sel[2(LV-1-d) +: 2], the root on the top pair)
    localparam integer LV = LN / 2;
    localparam integer NI = (N - 1) / 3;             // inner nodes
    wire [PW-1:0] sel = ptr + first;                 // < N when window != 0
    wire [AW-1:0] node [0:NI+N-1] /*verilator split_var*/;
    genvar i;
    generate
        for (i = 0; i < N; i = i + 1) begin : g_leaf
            assign node[NI+i] = act[AW*i +: AW];
        end
        for (i = 0; i < NI; i = i + 1) begin : g_node
            // depth d = floor(log4(3i + 1)) = floor(log2(3i + 1)) / 2
            localparam integer D = ($clog2(3*i + 2) - 1) / 2;
            wire [1:0] s = sel[2*(LV-1-D) +: 2];
            assign node[i] = s[1] ? (s[0] ? node[4*i+4] : node[4*i+3])
                                  : (s[0] ? node[4*i+2] : node[4*i+1]);
        end
    endgenerate
    // act holds {neg, x}: afix = neg ? -x : x, x a signed (AW-1)-bit value;
    // the column-sum adder adds or subtracts (x ^ neg, carry in neg)
    wire                 neg = node[0][AW-1];
    wire signed [SW-1:0] x   = {{(SW-AW+1){node[0][AW-2]}}, node[0][AW-2:0]};
    wire signed [SW-1:0] addend = x ^ {SW{neg}};

    always @(posedge clk) begin
        if (load) begin
            col <= col_in;
            ptr <= en ? {PW{1'b0}} : N[PW-1:0];
            sum <= {SW{1'b0}};
        end else if (!done) begin
            if (window != {W{1'b0}})
                sum <= sum + addend + {{(SW-1){1'b0}}, neg};
            ptr <= ptr + ((rest != {W{1'b0}}) ? second : W[PW-1:0]);
        end
    end
endmodule
`default_nettype wire
