/*
 * bitlet_hw.h -- the single source of truth for the Bitlet hardware interface.
 *
 * Every register offset, instruction field, format code and constant used by
 * the HLS kernel, the vendor-FP baseline kernel, the cffi reference and the
 * Python SDK is defined here and nowhere else.  The Python side reads these
 * values with one reader, sdk/bitlet/sources.py (bitlet.hw, the cffi builds,
 * overlay/make_metadata.py); tests/test_hw_header.py checks that reading
 * against the values the C compiler sees and fails on any drift.
 *
 * Rules for this file (that reader parses it):
 *   - constants are plain `#define NAME value` integer literals (hex or
 *     decimal, optional U/UL suffix), one per line, no expressions;
 *   - the instruction layout is given as word indices and bit fields.
 */
#ifndef BITLET_HW_H
#define BITLET_HW_H

/* ------------------------------------------------------------------ */
/* Identity                                                             */
/* ------------------------------------------------------------------ */
#define BITLET_MAGIC            0xB17E7001U  /* ID_MAGIC register value        */
#define BITLET_ISA_VERSION      2            /* bump on any layout change      */
#define BITLET_KIND_BITLET      1            /* kernel kind: Bitlet PE array   */
#define BITLET_KIND_VENDOR_FP   2            /* kernel kind: vendor FP MAC IP  */

/* Compile-time kernel configuration (overridable with -D at HLS build). */
#ifndef BITLET_N_PE
#define BITLET_N_PE             4            /* PEs in the array               */
#endif
#define BITLET_GROUP            64           /* MACs per PE operation          */
#define BITLET_SIG_BITS         24           /* bit columns (significand)      */
#define BITLET_PRUNE_ALL        0xFFFFFFU    /* all 24 columns enabled         */
/* On-chip buffer sizes, in 32-bit words (what the scheduler tiles for). */
#define BITLET_ACT_BUF_WORDS    65536        /* activation line buffer         */
#define BITLET_WGT_BUF_WORDS    16384        /* weight buffer                  */
#define BITLET_OUT_BUF_WORDS    8192         /* output / partial-sum buffer    */
#define BITLET_CLOCK_MHZ        200          /* default overlay clock          */

/* Latencies of the PE (NUMERICS.md section 4). */
#define BITLET_LAT_FP32         24           /* fp32 latency  = 24 + S         */
#define BITLET_LAT_FIXED        21           /* fixed latency = 21 + S         */
#define BITLET_WINDOW           8            /* scanner check window (bits)    */

/* Limits (NUMERICS.md section 6). */
#define BITLET_FIXED_MAX_K      32768        /* fixed mode: K <= 32768         */
#define BITLET_QUANT_MAX        24           /* fixed mode: quant in 0..24     */
#define BITLET_FIXED_MAX_BITS   24           /* fixed mode: 1..24 weight bits  */
#define BITLET_CANONICAL_NAN    0x7FC00000U
#define BITLET_CANONICAL_NAN_FP16 0x7E00U    /* NaN written as a binary16 output */
#define BITLET_CANONICAL_NAN_BF16 0x7FC0U    /* NaN written as a bfloat16 output */
#define BITLET_FIXED_BIAS_BITS  61           /* fixed mode: |bias| < 2^61      */
#define BITLET_MAX_DIM          65535        /* N, IH, IW, CIN, COUT, KH, KW   */
#define BITLET_MAX_K            16777216     /* KH*KW*CIN/groups <= 2^24       */

/* Kernel model (hls/README.md "Cycle model").                           */
/* Buffer rules checked per instruction (else STATUS_BUF_OVERFLOW):      */
/*   weights:  N_PE * (KG_END-KG_BEGIN)*64            <= WGT_BUF_WORDS   */
/*   act rows: ((KH-1)*dil_h + 1) * IW * CIN          <= ACT_BUF_WORDS   */
/*   out row:  OW * N_PE * (1 float, 2 fixed)         <= OUT_BUF_WORDS   */
/*   bias:     COUT * (1 float, 2 fixed), if FLAG_BIAS <= BIAS_BUF_WORDS */
/* All weights stay resident (loaded once) when COUT*(KG_END-KG_BEGIN)*64 */
/* <= WGT_BUF_WORDS, else N_PE rows are reloaded per batch and out row.  */
#define BITLET_BIAS_BUF_WORDS   8192         /* bias buffer (words)            */
/* m_axi data width in bytes (one beat per cycle): 8 = 64 bits (Zynq-7000
 * HP ports); 16 on Zynq UltraScale+ HP ports (run_hls.tcl passes
 * -DBITLET_AXI_BYTES=16 for those parts, see hls/README.md). */
#ifndef BITLET_AXI_BYTES
#define BITLET_AXI_BYTES        8
#endif
#define BITLET_DDR_LATENCY      32           /* cycles: first beat of a burst (modelled) */
#define BITLET_DDR_OUTSTANDING  4            /* bursts in flight per direction (m_axi
                                                num_read/write_outstanding)      */
#define BITLET_ACT_BANKS        64           /* line-buffer banks (word mod 64)  */
#define BITLET_WGT_BANKS        8            /* weight banks per PE lane: a group's
                                                64 weights take 64/8 reads      */
#define BITLET_INSN_OVERHEAD_CYCLES 32       /* fetch, decode, checks, profile */

/* Vendor-FP baseline kernel model (vendor_kernel.c, hls/README.md).     */
#define BITLET_VENDOR_LANES     4            /* fp32 multipliers per unit      */
#define BITLET_VENDOR_MUL_LAT   3            /* fp32 multiplier latency        */
#define BITLET_VENDOR_ADD_LAT   4            /* fp32 adder latency             */
#define BITLET_VENDOR_PARTIALS  16           /* = LANES * ADD_LAT partial sums */
#define BITLET_VENDOR_TREE_DEPTH 4           /* log2(PARTIALS) adder levels    */

/* ------------------------------------------------------------------ */
/* Data formats (fields WFMT, AFMT, OFMT of an instruction)             */
/* ------------------------------------------------------------------ */
#define BITLET_FMT_FP32         0   /* IEEE binary32, 4 bytes                 */
#define BITLET_FMT_FP16         1   /* IEEE binary16, 2 bytes                 */
#define BITLET_FMT_BF16         2   /* bfloat16, 2 bytes                      */
#define BITLET_FMT_FIXED        3   /* int32 two's complement (activations,
                                       outputs) / sign<<31|abs (weights)      */
#define BITLET_N_FMT            4
/* Bit mask of supported formats reported in ID_FORMATS: 1 << BITLET_FMT_x */
#define BITLET_FORMATS_BITLET   0x0FU
#define BITLET_FORMATS_VENDOR   0x07U   /* the FP baseline: fp32/fp16/bf16   */

/* ------------------------------------------------------------------ */
/* Control register map (s_axilite bundle "control")                   */
/* Follows the layout Vitis HLS generates for the argument order of   */
/* bitlet_top(): 64-bit args take lo, hi and a reserved word; 32-bit  */
/* inputs a word and a reserved word; outputs a data word and an       */
/* ap_vld control word.                                                */
/* ------------------------------------------------------------------ */
#define BITLET_REG_CTRL         0x00   /* ap_ctrl_hs                          */
#define BITLET_REG_GIE          0x04   /* global interrupt enable             */
#define BITLET_REG_IER          0x08   /* IP interrupt enable                 */
#define BITLET_REG_ISR          0x0C   /* IP interrupt status, toggle-on-write*/
#define BITLET_REG_MEM_LO       0x10   /* m_axi base of `mem` (board: 0)      */
#define BITLET_REG_MEM_HI       0x14
#define BITLET_REG_MEM_BASE_LO  0x1C   /* device address of mem word 0        */
#define BITLET_REG_MEM_BASE_HI  0x20
#define BITLET_REG_MEM_SIZE     0x28   /* bytes addressable from MEM_BASE     */
#define BITLET_REG_PROG_LO      0x30   /* device address of instruction 0     */
#define BITLET_REG_PROG_HI      0x34
#define BITLET_REG_N_INSN       0x3C   /* number of instructions              */
#define BITLET_REG_PROF_LO      0x44   /* device address of profile area, 0=off*/
#define BITLET_REG_PROF_HI      0x48
#define BITLET_REG_STATUS       0x50   /* out: BITLET_STATUS_* of the last run*/
#define BITLET_REG_STATUS_CTRL  0x54   /* ap_vld of STATUS                    */
#define BITLET_REG_INSN_DONE    0x58   /* out: instructions completed         */
#define BITLET_REG_INSN_DONE_CTRL 0x5C
#define BITLET_REG_ID_MAGIC     0x60   /* out: BITLET_MAGIC                   */
#define BITLET_REG_ID_MAGIC_CTRL 0x64
#define BITLET_REG_ID_VERSION   0x68   /* out: BITLET_ISA_VERSION             */
#define BITLET_REG_ID_VERSION_CTRL 0x6C
#define BITLET_REG_ID_CONFIG    0x70   /* out: packed, see ID_CONFIG fields   */
#define BITLET_REG_ID_CONFIG_CTRL 0x74
#define BITLET_REG_ID_ACT_BUF   0x78   /* out: BITLET_ACT_BUF_WORDS           */
#define BITLET_REG_ID_ACT_BUF_CTRL 0x7C
#define BITLET_REG_ID_WGT_BUF   0x80   /* out: BITLET_WGT_BUF_WORDS           */
#define BITLET_REG_ID_WGT_BUF_CTRL 0x84
#define BITLET_REG_ID_OUT_BUF   0x88   /* out: BITLET_OUT_BUF_WORDS           */
#define BITLET_REG_ID_OUT_BUF_CTRL 0x8C
#define BITLET_REG_CLOCK_LO     0x90   /* out: free-running cycle counter (the */
#define BITLET_REG_CLOCK_HI     0x94   /*   `timestamp` input) at the end of a run */
#define BITLET_REG_CLOCK_CTRL   0x98
#define BITLET_REG_SPAN         0xA0   /* size of the register window (bytes) */

/* BITLET_REG_CTRL bits (Vitis HLS ap_ctrl_hs). */
#define BITLET_CTRL_AP_START    0x01
#define BITLET_CTRL_AP_DONE     0x02   /* clear-on-read                       */
#define BITLET_CTRL_AP_IDLE     0x04
#define BITLET_CTRL_AP_READY    0x08   /* clear-on-read                       */
#define BITLET_CTRL_AUTO_RESTART 0x80
/* BITLET_REG_IER / BITLET_REG_ISR bits. */
#define BITLET_IRQ_AP_DONE      0x01
#define BITLET_IRQ_AP_READY     0x02

/* ID_CONFIG fields: n_pe | kind << 8 | formats << 16 | clock_mhz/4 << 24 */
#define BITLET_CFG_NPE_SHIFT    0
#define BITLET_CFG_NPE_MASK     0xFFU
#define BITLET_CFG_KIND_SHIFT   8
#define BITLET_CFG_KIND_MASK    0xFFU
#define BITLET_CFG_FMT_SHIFT    16
#define BITLET_CFG_FMT_MASK     0xFFU
#define BITLET_CFG_CLK_SHIFT    24     /* clock in units of 4 MHz            */
#define BITLET_CFG_CLK_MASK     0xFFU

/* STATUS values (register and profile). */
#define BITLET_STATUS_OK        0
#define BITLET_STATUS_BAD_OPCODE 1     /* unknown opcode                      */
#define BITLET_STATUS_BAD_FIELD 2      /* a field out of range (shape, fmt, quant) */
#define BITLET_STATUS_BUS_ERROR 3      /* an address outside [MEM_BASE, +MEM_SIZE) */
#define BITLET_STATUS_BUF_OVERFLOW 4   /* tile does not fit the on-chip buffers */

/* ------------------------------------------------------------------ */
/* Instruction: BITLET_INSN_WORDS little-endian uint32 words in DDR,  */
/* aligned to BITLET_INSN_BYTES.  Word indices:                       */
/* ------------------------------------------------------------------ */
#define BITLET_INSN_WORDS       32
#define BITLET_INSN_BYTES       128

#define BITLET_W_OP             0   /* opcode | wfmt<<8 | afmt<<12 | ofmt<<16 | flags<<24 */
#define BITLET_W_PRUNE          1   /* prune mask (bits 23..0) | quant << 24      */
#define BITLET_W_ACT_LO         2   /* input activations, device byte address    */
#define BITLET_W_ACT_HI         3
#define BITLET_W_WGT_LO         4   /* weights (device layout)                   */
#define BITLET_W_WGT_HI         5
#define BITLET_W_BIAS_LO        6   /* bias: fp32 per Cout, or int64 in fixed mode */
#define BITLET_W_BIAS_HI        7
#define BITLET_W_OUT_LO         8   /* output                                    */
#define BITLET_W_OUT_HI         9
#define BITLET_W_ACC_LO         10  /* partial sums read when FLAG_ACCUM         */
#define BITLET_W_ACC_HI         11
#define BITLET_W_N              12  /* batch (GEMM: rows of A)                  */
#define BITLET_W_IH             13  /* input height (GEMM: 1)                   */
#define BITLET_W_IW             14  /* input width  (GEMM: 1)                   */
#define BITLET_W_CIN            15  /* input channels (GEMM: K)                 */
#define BITLET_W_COUT           16  /* output channels (GEMM: M)                */
#define BITLET_W_KH             17  /* kernel height (GEMM: 1)                  */
#define BITLET_W_KW             18
#define BITLET_W_STRIDE         19  /* stride_h | stride_w << 16                */
#define BITLET_W_PAD_TL         20  /* pad_top  | pad_left << 16                */
#define BITLET_W_PAD_BR         21  /* pad_bottom | pad_right << 16             */
#define BITLET_W_DIL            22  /* dil_h | dil_w << 16                      */
#define BITLET_W_GROUPS         23  /* convolution groups (Cin, Cout divisible) */
#define BITLET_W_OHW            24  /* out height | out width << 16 (checked)   */
#define BITLET_W_OUT_CSTRIDE    25  /* output pixel pitch in elements (>= OUT_COFF
                                       + COUT): write into a channel slice     */
#define BITLET_W_OUT_COFF       26  /* first output channel of that slice       */
#define BITLET_W_IN_CSTRIDE     27  /* input pixel pitch in elements (>= IN_COFF
                                       + CIN): read a channel slice            */
#define BITLET_W_IN_COFF        28  /* first input channel of that slice        */
#define BITLET_W_MISC           29  /* fixbits (bits 7..0) | layer id << 8      */
#define BITLET_W_KG_BEGIN       30  /* first 64-group of K computed (K tiling)  */
#define BITLET_W_KG_END         31  /* end group (exclusive); 0 = the last one  */

/* Fields of word BITLET_W_OP. */
#define BITLET_OP_MASK          0xFFU
#define BITLET_WFMT_SHIFT       8
#define BITLET_AFMT_SHIFT       12
#define BITLET_OFMT_SHIFT       16
#define BITLET_FMT_MASK         0xFU
#define BITLET_FLAGS_SHIFT      24
#define BITLET_FLAGS_MASK       0xFFU
#define BITLET_QUANT_SHIFT      24     /* in word BITLET_W_PRUNE             */
#define BITLET_FIXBITS_MASK     0xFFU  /* in word BITLET_W_MISC              */
#define BITLET_LAYER_SHIFT      8      /* in word BITLET_W_MISC              */
#define BITLET_PRUNE_MASK       0xFFFFFFU
#define BITLET_HALF_SHIFT       16     /* second half of a packed pair word  */
#define BITLET_HALF_MASK        0xFFFFU

/* Opcodes. */
#define BITLET_OP_NOP           0
#define BITLET_OP_GEMM          1   /* out[n, m] = sum_k W[m, k] * A[n, k]      */
#define BITLET_OP_CONV2D        2   /* NHWC conv, W [Cout, KH, KW, Cin/groups]  */

/* Flags (bits of the flags byte). */
#define BITLET_FLAG_RELU        0x01
#define BITLET_FLAG_BIAS        0x02   /* add bias (last K tile only)         */
#define BITLET_FLAG_ACCUM       0x04   /* start the group sum from ACC partials*/
#define BITLET_FLAG_PARTIAL     0x08   /* write raw partial sums (fp32 in float
                                          modes, int64 accumulators in fixed
                                          mode) whatever OFMT says: no bias,
                                          activation, quant or rounding. ACC,
                                          read with FLAG_ACCUM, has this format */

/* ------------------------------------------------------------------ */
/* Device memory layouts (all little-endian, element sizes by format:  */
/* fp32/fixed 4 bytes, fp16/bf16 2 bytes, fixed-mode bias/partials 8)  */
/*                                                                      */
/* Activations (ACT): NHWC, element (n, y, x, c) at                     */
/*   ((n*IH + y)*IW + x)*IN_CSTRIDE + IN_COFF + c.  GEMM: A[n, k] with   */
/*   IH = IW = 1, CIN = K.                                              */
/* Weights (WGT): one row per output channel co, the K = KH*KW*CIN_G    */
/*   values of NUMERICS.md s.5 order k = (kh*KW + kw)*CIN_G + ci,       */
/*   zero padded to a multiple of 64, restricted to groups              */
/*   [KG_BEGIN, KG_END): row length (KG_END-KG_BEGIN)*64 elements.       */
/*   fp32/fp16/bf16: the IEEE bits; fixed: sign << 31 | abs.            */
/* Bias: COUT fp32 (float modes) or int64 (fixed mode).                 */
/* Output (OUT) and partials (ACC): NHWC [N, OH, OW] with pixel pitch   */
/*   OUT_CSTRIDE and channel offset OUT_COFF (ACC uses the same         */
/*   geometry at its own address).                                      */
/* Instructions and profile records: arrays of BITLET_INSN_WORDS and    */
/*   BITLET_PROF_WORDS uint32, 64-bit values as lo/hi word pairs.        */
/* Every operand address is aligned to its element (2 bytes for fp16/   */
/*   bf16, else 4; int64 values as word pairs) and its whole extent     */
/*   lies in [MEM_BASE, MEM_BASE + MEM_SIZE), else STATUS_BUS_ERROR     */
/*   before anything is written.  OUT must not overlap ACT, WGT or BIAS;*/
/*   ACC may equal OUT.  Fixed mode: activations are clamped to         */
/*   [-2^24, 2^24 - 1]; weight bits 30..24 are ignored; fixbits (MISC)  */
/*   is informational (0..24).                                          */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Profile area: one record of BITLET_PROF_WORDS uint32 per instruction */
/* ------------------------------------------------------------------ */
#define BITLET_PROF_WORDS       20
#define BITLET_PROF_BYTES       80
#define BITLET_P_STATUS         0   /* BITLET_STATUS_* of this instruction     */
#define BITLET_P_LAYER          1   /* layer id from BITLET_W_MISC             */
#define BITLET_P_PE_CYCLES_LO   2   /* PE-array cycles, kernel schedule        */
#define BITLET_P_PE_CYCLES_HI   3
#define BITLET_P_REF_CYCLES_LO  4   /* PE-array cycles, reference schedule     */
#define BITLET_P_REF_CYCLES_HI  5
#define BITLET_P_KERNEL_CYCLES_LO 6 /* whole instruction incl. DDR transfers   */
#define BITLET_P_KERNEL_CYCLES_HI 7
#define BITLET_P_GROUPS_LO      8   /* PE operations (groups) issued           */
#define BITLET_P_GROUPS_HI      9
#define BITLET_P_SCAN_LO        10  /* sum of S over all groups                */
#define BITLET_P_SCAN_HI        11
#define BITLET_P_DDR_BYTES_LO   12  /* bytes read + written in DDR             */
#define BITLET_P_DDR_BYTES_HI   13
#define BITLET_P_START_LO       14  /* clock (timestamp) when the fetch started */
#define BITLET_P_START_HI       15
#define BITLET_P_END_LO         16  /* clock when the instruction finished      */
#define BITLET_P_END_HI         17
#define BITLET_P_RSVD0          18
#define BITLET_P_RSVD1          19

/* ------------------------------------------------------------------ */
/* Overlay                                                              */
/* ------------------------------------------------------------------ */
/* VLNV of the exported IP (Vitis HLS export_design -vendor/-library/...). */
#define BITLET_IP_VENDOR        "bitlet.org"
#define BITLET_IP_LIBRARY       "hls"
#define BITLET_IP_NAME          "bitlet_top"
#define BITLET_IP_VERSION       "1.0"
#define BITLET_VENDOR_IP_NAME   "vendor_fp_top"

#endif /* BITLET_HW_H */
