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
// register; a W-bit window selector, two W-input priority encoders, a
// pointer adder, an N:1 activation multiplexer and an add/subtract column
// sum adder.  No DSP.
`default_nettype none
module bitlet_pe_engine #(
    parameter integer N  = 64,        // pairs per group (column length)
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

    // the check window at the pointer (bits past N-1 read as 0)
    wire [N+W-1:0] col_ext = {{W{1'b0}}, col};
    wire [W-1:0]   window  = col_ext[ptr +: W];
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

    // the selected activation: an N:1 multiplexer, a binary tree on sel
    // (heap order: node i has children 2i+1 and 2i+2, leaf k is node N-1+k)
    localparam integer LN = $clog2(N);
    wire [PW-1:0] sel = ptr + first;                 // < N when window != 0
    wire [AW-1:0] node [0:2*N-2] /*verilator split_var*/;
    genvar i;
    generate
        for (i = 0; i < N; i = i + 1) begin : g_leaf
            assign node[N-1+i] = act[AW*i +: AW];
        end
        for (i = 0; i < N - 1; i = i + 1) begin : g_node
            // depth of node i: floor(log2(i+1)); the root selects on sel's MSB
            assign node[i] = sel[LN - 1 - ($clog2(i + 2) - 1)] ? node[2*i+2] : node[2*i+1];
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
