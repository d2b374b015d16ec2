# run_hls.tcl -- Vitis HLS build of the Bitlet kernel IP or of the vendor-FP
# baseline IP: C simulation, C synthesis, C/RTL co-simulation, IP export.
#
# Usage (from any directory):
#   vitis_hls -f hls/run_hls.tcl -tclargs ?TOP? ?PART? ?STEPS?
#     TOP    bitlet (default) -> bitlet_top, or vendor (alias vendor_fp, the
#            overlay KIND) -> vendor_fp_top
#     PART   FPGA part; default $env(BITLET_PART), else xc7z020clg400-1 (PYNQ-Z2)
#     STEPS  comma list of csim,csynth,cosim,export (default: all four)
#   Optional environment:
#     BITLET_N_PE      PEs (1..255, reported in ID_CONFIG; default from bitlet_hw.h)
#     BITLET_CLOCK_MHZ target clock in MHz (default BITLET_CLOCK_MHZ of
#                      bitlet_hw.h); a multiple of 4 (ID_CONFIG holds clock/4).
#                      While the header does not let -D override its
#                      BITLET_CLOCK_MHZ, any other value is refused: the IP
#                      would report the header's clock in ID_CONFIG.
#     BITLET_HLS_WORK  project directory (default hls/build_hls)
#     BITLET_GOLDEN_BIN_DIR  testbench vectors (default hls/csim/build)
#     BITLET_RTL_PE    1: the RTL PE build of the bitlet top (below); 0 or
#                      unset: the HLS C PE
#   The project is <work>/prj_<top>, the solution solution_<part>; export
#   writes the IP (component.xml) to <work>/prj_<top>/solution_<part>/impl/ip,
#   the IP repository overlay/build.tcl is given by overlay/Makefile.
#
# Before csim/cosim, export the golden vectors for the testbench once:
#   make -C hls/csim build/golden.stamp
#
# Every constant (default clock, VLNV, names) is read from bitlet_hw.h:
# nothing is typed twice.

set hls_dir [file dirname [file normalize [info script]]]

# ---------------------------------------------------------------- arguments
set top_kind [expr {[llength $argv] > 0 ? [lindex $argv 0] : "bitlet"}]
if {[llength $argv] > 1} {
    set part [lindex $argv 1]
} elseif {[info exists env(BITLET_PART)]} {
    set part $env(BITLET_PART)
} else {
    set part xc7z020clg400-1
}
set steps [expr {[llength $argv] > 2 ? [split [lindex $argv 2] ","] : {csim csynth cosim export}}]
foreach step $steps {
    if {[lsearch -exact {csim csynth cosim export} $step] < 0} {
        error "run_hls.tcl: unknown step '$step' (csim, csynth, cosim, export)"
    }
}

# ---------------------------------------------------------- header constants
proc read_file {path} {
    set f [open $path r]
    set text [read $f]
    close $f
    return $text
}

# Value of `#define BITLET_<name> <value>` (suffix U/L and quotes removed).
proc header_value {text name} {
    if {![regexp -line "^#define\\s+BITLET_${name}\\s+(\\S+)" $text -> value]} {
        error "run_hls.tcl: bitlet_hw.h defines no BITLET_${name}"
    }
    regsub {^(0[xX][0-9A-Fa-f]+|[0-9]+)[uUlL]+$} $value {\1} value
    return [string trim $value "\""]
}

# Whether `#define BITLET_<name>` sits in an `#ifndef BITLET_<name>` guard
# (then -DBITLET_<name>=... overrides it).
proc header_overridable {text name} {
    return [regexp -line "^#ifndef\\s+BITLET_${name}\\s*$" $text]
}

# An integer setting from the environment variable BITLET_<name>, or the
# header's value; in lo..hi and a multiple of `step`.
proc int_setting {text name lo hi {step 1}} {
    set value [header_value $text $name]
    if {[info exists ::env(BITLET_$name)] && $::env(BITLET_$name) ne ""} {
        set value $::env(BITLET_$name)
    }
    if {![string is integer -strict $value] || $value < $lo || $value > $hi
        || $value % $step != 0} {
        set rule [expr {$step > 1 ? ", a multiple of $step" : ""}]
        error "run_hls.tcl: BITLET_$name must be an integer in $lo..$hi$rule, got '$value'"
    }
    return [expr {$value}]
}

set hw [read_file [file join $hls_dir bitlet_hw.h]]
set vendor [header_value $hw IP_VENDOR]
set library [header_value $hw IP_LIBRARY]
set version [header_value $hw IP_VERSION]
set n_pe [int_setting $hw N_PE 1 [expr {[header_value $hw CFG_NPE_MASK]}]]
set clock_mhz [int_setting $hw CLOCK_MHZ 4 [expr {4 * [header_value $hw CFG_CLK_MASK]}] 4]
set defines "-DBITLET_N_PE=${n_pe}"
if {[header_overridable $hw CLOCK_MHZ]} {
    append defines " -DBITLET_CLOCK_MHZ=${clock_mhz}"
} elseif {$clock_mhz != [header_value $hw CLOCK_MHZ]} {
    error "run_hls.tcl: BITLET_CLOCK_MHZ=$clock_mhz, but the kernel reports\
        [header_value $hw CLOCK_MHZ] MHz in ID_CONFIG: bitlet_hw.h fixes BITLET_CLOCK_MHZ\
        (no #ifndef guard), so build at [header_value $hw CLOCK_MHZ] MHz or make it overridable"
}
set period_ns [format "%.3f" [expr {1000.0 / $clock_mhz}]]
# m_axi data width (bitlet_hw.h BITLET_AXI_BYTES): 64 bits on Zynq-7000 HP
# ports, 128 on Zynq UltraScale+ HP ports (parts xczu*, and xck* of the Kria
# K26 SOM); BITLET_AXI_BYTES in the environment overrides (overlay/Makefile
# passes the board's hp_data_width / 8 from overlay/boards.tcl).  The C port stays uint64_t: each beat loop
# reads AXI_BYTES/8 words (unrolled) and the tool widens the bursts to the
# port width (config_interface -m_axi_max_widen_bitwidth, UG1399
# "Automatic Port Width Resizing"; operands are beat-aligned).
if {[info exists env(BITLET_AXI_BYTES)] && $env(BITLET_AXI_BYTES) ne ""} {
    set axi_bytes $env(BITLET_AXI_BYTES)
} elseif {[string match -nocase xczu* $part] || [string match -nocase xck* $part]} {
    set axi_bytes 16
} else {
    set axi_bytes [header_value $hw AXI_BYTES]
}
if {$axi_bytes != 8 && $axi_bytes != 16} {
    error "run_hls.tcl: BITLET_AXI_BYTES must be 8 or 16, got '$axi_bytes'"
}
append defines " -DBITLET_AXI_BYTES=${axi_bytes}"

switch -- $top_kind {
    bitlet {
        set top bitlet_top
        set ipname [header_value $hw IP_NAME]
        set tb_flags ""
        set description "Bitlet bit-interleaving FP deep-learning kernel, $n_pe PEs"
    }
    vendor - vendor_fp {
        set top vendor_fp_top
        set ipname [header_value $hw VENDOR_IP_NAME]
        set tb_flags "-DBITLET_TB_VENDOR"
        set description "Vendor floating-point MAC baseline kernel (same ISA as Bitlet), $n_pe MAC units"
    }
    default {
        error "run_hls.tcl: TOP must be 'bitlet' or 'vendor' (or 'vendor_fp'), got '$top_kind'"
    }
}

# ------------------------------------------------------------------ project
set work [expr {[info exists env(BITLET_HLS_WORK)] ? $env(BITLET_HLS_WORK) \
                                                    : [file join $hls_dir build_hls]}]
file mkdir $work
cd $work

# The RTL PE (hls/rtl/, hls/README.md "RTL PE") as an RTL blackbox, with
# BITLET_RTL_PE=1: -DBITLET_RTL_PE makes bitlet_top's PE array call
# bitlet_pe_bb() (hls/rtl/bitlet_pe_bb.h) once per PE and group step, and
# `add_files -blackbox` makes Vitis HLS instantiate hls/rtl/bitlet_pe_bb.v
# (the RTL PE) for each call; the HLS C PE is its C model (csim).
set rtl_pe [expr {[info exists env(BITLET_RTL_PE)] ? $env(BITLET_RTL_PE) : "0"}]
if {$rtl_pe ni {"" 0 1}} {
    error "run_hls.tcl: BITLET_RTL_PE must be 0 or 1, got '$rtl_pe'"
}
set rtl_pe [expr {$rtl_pe eq "1"}]
if {$rtl_pe && $top ne "bitlet_top"} {
    error "run_hls.tcl: BITLET_RTL_PE=1 is the RTL PE build of the bitlet top, not of $top"
}
if {$rtl_pe} {
    append defines " -DBITLET_RTL_PE"
    set description "$description (RTL PE)"
}
set cflags "-I${hls_dir} ${defines}"
open_project -reset prj_${top}
set_top $top
# Both tops are in bitlet_kernel.c (they share its buffers and instruction
# machinery; `kind` is a constant inlined into each top, so each IP holds
# only its own datapath: the PE array, or vendor_kernel.c's MAC units).
foreach src {bitlet_kernel.c vendor_kernel.c bitlet_pe.c} {
    add_files [file join $hls_dir $src] -cflags $cflags
}
foreach hdr {bitlet_hw.h bitlet_ctl.h bitlet_top.h bitlet_pe.h} {
    add_files [file join $hls_dir $hdr] -cflags $cflags
}
if {$rtl_pe} {
    add_files -blackbox [file join $hls_dir rtl bitlet_pe_bb.json]
}
add_files -tb [file join $hls_dir csim tb_kernel.c] -cflags "$cflags $tb_flags -Wno-unknown-pragmas"

open_solution -reset solution_${part} -flow_target vivado
set_part $part
create_clock -period $period_ns -name default
config_interface -m_axi_max_widen_bitwidth [expr {8 * $axi_bytes}] \
    -m_axi_alignment_byte_size $axi_bytes

# Golden vectors for the testbench (main(argc, argv) takes the .bin files).
set bin_dir [expr {[info exists env(BITLET_GOLDEN_BIN_DIR)] ? $env(BITLET_GOLDEN_BIN_DIR) \
                                                           : [file join $hls_dir csim build]}]
set golden [lsort [glob -nocomplain [file join $bin_dir *.bin]]]
proc need_golden {golden} {
    if {[llength $golden] == 0} {
        error "run_hls.tcl: no golden .bin files; run `make -C hls/csim build/golden.stamp` first"
    }
}
# RTL co-simulation is slow: replay only the small edge-case files there.
set golden_small [lsearch -all -inline -regexp $golden {_edge\.bin$}]

if {[lsearch -exact $steps csim] >= 0} {
    need_golden $golden
    csim_design -argv [join $golden " "]
}
if {[lsearch -exact $steps csynth] >= 0 || [lsearch -exact $steps cosim] >= 0
    || [lsearch -exact $steps export] >= 0} {
    csynth_design
}
if {[lsearch -exact $steps cosim] >= 0} {
    need_golden $golden_small
    cosim_design -rtl verilog -argv [join $golden_small " "]
}
if {[lsearch -exact $steps export] >= 0} {
    export_design -format ip_catalog -rtl verilog \
        -vendor $vendor -library $library -version $version -ipname $ipname \
        -display_name $ipname -description $description
}
exit
