# common.tcl -- helpers shared by the overlay scripts (plain Tcl 8.5+, no
# Vivado command): the board table and the constants of hls/bitlet_hw.h.
#
#   source common.tcl
#   bitlet_param pynqz2 bitlet part        -> xc7z020clg400-1
#   bitlet_vlnv bitlet                     -> bitlet.org:hls:bitlet_top:1.0
#   bitlet_header_value REG_SPAN           -> 144

set BITLET_OVERLAY_DIR [file dirname [file normalize [info script]]]
set BITLET_HEADER [file join [file dirname $BITLET_OVERLAY_DIR] hls bitlet_hw.h]
source [file join $BITLET_OVERLAY_DIR boards.tcl]

# Value of `#define BITLET_<name> ...` in hls/bitlet_hw.h: an integer (hex or
# decimal, suffix dropped) or the contents of a string literal.
proc bitlet_header_value {name} {
    global BITLET_HEADER
    set fh [open $BITLET_HEADER r]
    set text [read $fh]
    close $fh
    if {[regexp -line "^#define\\s+BITLET_${name}\\s+\"(\[^\"\]*)\"" $text -> value]} {
        return $value
    }
    if {[regexp -line "^#define\\s+BITLET_${name}\\s+(0\[xX\]\[0-9A-Fa-f\]+|\[0-9\]+)\[uUlL\]*" \
            $text -> value]} {
        return [expr {$value}]
    }
    error "BITLET_${name} is not defined in $BITLET_HEADER"
}

# VLNV of the kernel IP of `kind` (bitlet | vendor_fp), from the header.
proc bitlet_vlnv {kind} {
    set name [bitlet_header_value [expr {$kind eq "bitlet" ? "IP_NAME" : "VENDOR_IP_NAME"}]]
    return [join [list [bitlet_header_value IP_VENDOR] [bitlet_header_value IP_LIBRARY] \
                      $name [bitlet_header_value IP_VERSION]] :]
}

proc bitlet_check_choice {what value choices} {
    if {$value ni $choices} {
        error "unknown $what '$value': expected one of [join [lsort $choices] {, }]"
    }
}

# One parameter of an overlay: looked up in the board, then its PS type, then
# the kernel kind, then the common table.  `n_pe` is resolved per kind, and
# `vlnv`, `top` come from the header / kind table.
proc bitlet_param {board kind key} {
    global BITLET_BOARDS BITLET_PS BITLET_KINDS BITLET_COMMON
    bitlet_check_choice board $board [dict keys $BITLET_BOARDS]
    bitlet_check_choice kind $kind [dict keys $BITLET_KINDS]
    set b [dict get $BITLET_BOARDS $board]
    if {$key eq "n_pe"} {
        return [dict get $b n_pe $kind]
    }
    if {$key eq "vlnv"} {
        return [bitlet_vlnv $kind]
    }
    foreach table [list $b [dict get $BITLET_PS [dict get $b ps_type]] \
                       [dict get $BITLET_KINDS $kind] $BITLET_COMMON] {
        if {[dict exists $table $key]} {
            return [dict get $table $key]
        }
    }
    error "no overlay parameter '$key' for board $board, kind $kind (see overlay/boards.tcl)"
}

# PS CONFIG.* dict for a board, placeholders replaced.
proc bitlet_ps_config {board kind} {
    set map [list %CLOCK_MHZ% [bitlet_param $board $kind clock_mhz] \
                 %HP_WIDTH% [bitlet_param $board $kind hp_data_width]]
    return [string map $map [bitlet_param $board $kind ps_config]]
}

# Number of bytes written as 0x hex, e.g. 65536 -> 0x00010000.
proc bitlet_hex {value} {
    return [format 0x%08X [expr {$value}]]
}
