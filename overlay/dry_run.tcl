# dry_run.tcl -- run build.tcl under plain tclsh with every Vivado command
# replaced by a stub that records the call (no Vivado needed).  Used by
# tests/test_overlay.py and by `make dry-run`.
#
#   tclsh overlay/dry_run.tcl <board> <kind> <work_dir> [slack_ns] [exported_ip]
#
# Writes <work_dir>/calls.txt (one Tcl list per Vivado call: command and
# arguments) and installs the fake outputs into <work_dir>/install.  The
# stubs check what Vivado would reject early: an unknown command, a pin or
# address segment of a cell that was never created, a malformed -vlnv, an
# IP repository without the kernel (exported_ip 0: no component.xml in it);
# and they answer the width (LEFT/RIGHT) of the pins bd.tcl asks about as
# the IPs would have them (see stub_pin_width).
#
#   tclsh overlay/dry_run.tcl -vivado ... -source build.tcl -tclargs <build.tcl args>
#
# stands in for `vivado` itself (make VIVADO="tclsh overlay/dry_run.tcl -vivado"):
# runs build.tcl with the arguments the Makefile passes, records the calls in
# ./calls.txt, and needs the IP repository the HLS step exported.

if {[lindex $argv 0] eq "-vivado"} {
    set stub_tclargs [lrange $argv [expr {[lsearch -exact $argv -tclargs] + 1}] end]
    lassign $stub_tclargs stub_board stub_kind stub_iprepo stub_build stub_install
    set stub_work [pwd]
    set stub_slack 0.250
    set stub_ip 0
} elseif {[llength $argv] >= 3} {
    lassign $argv stub_board stub_kind stub_work stub_slack stub_ip
    if {$stub_slack eq ""} {set stub_slack 0.250}
    if {$stub_ip eq ""} {set stub_ip 1}
    set stub_iprepo [file join $stub_work ip]
    file mkdir $stub_iprepo
    set stub_build [file join $stub_work build]
    set stub_install [file join $stub_work install]
    set stub_tclargs [list $stub_board $stub_kind $stub_iprepo $stub_build $stub_install 2 0]
} else {
    puts stderr "usage: tclsh dry_run.tcl <board> <kind> <work_dir> \[slack_ns\] \[exported_ip\]\
        | tclsh dry_run.tcl -vivado ... -tclargs <build.tcl arguments>"
    exit 2
}
set stub_calls {}
set stub_cells {}
set stub_config {}
set stub_rundir [file join $stub_build impl_1]

proc stub_record {args} {
    lappend ::stub_calls $args
}

proc stub_cell_of {path} {
    set cell [lindex [split [string trimleft $path /] /] 0]
    if {$cell ni $::stub_cells} {
        error "stub: '$path' names cell '$cell', which was never created (cells: $::stub_cells)"
    }
    return $path
}

# Commands whose result does not matter.
foreach cmd {create_project update_ip_catalog create_bd_design apply_bd_automation
             connect_bd_intf_net connect_bd_net assign_bd_address validate_bd_design
             save_bd_design generate_target add_files launch_runs wait_on_run open_run} {
    proc $cmd {args} [format {stub_record %s {*}$args; return ""} $cmd]
}

# set_property -dict {CONFIG.x v ...} <cell>: remembered per cell.
proc set_property {args} {
    stub_record set_property {*}$args
    if {[lindex $args 0] eq "-dict"} {
        dict set ::stub_config [lindex $args 2] \
            [dict merge [stub_cell_config [lindex $args 2]] [lindex $args 1]]
    }
    return ""
}

proc stub_cell_config {cell} {
    if {[dict exists $::stub_config $cell]} {
        return [dict get $::stub_config $cell]
    }
    return {}
}

# Bits of a pin, as the IPs would have them: a port of the kernel from the
# type of the top's argument of that name in hls/bitlet_top.h (what Vitis HLS
# exports: an ap_none scalar, or read-only pointer to one, is a data port
# named after the argument, as wide as the scalar's type, UG1399), the
# counter's Q from its CONFIG.Output_Width
# (PG121; 16 unless set).  Any other pin is not modelled (an error).
proc stub_pin_width {path} {
    lassign [split [string trimleft $path /] /] cell pin
    set p [list bitlet_param $::stub_board $::stub_kind]
    if {$cell eq [{*}$p instance]} {
        set fh [open [file join [file dirname $::BITLET_OVERLAY_DIR] hls bitlet_top.h] r]
        set text [read $fh]
        close $fh
        set top [{*}$p top]
        if {[regexp "void\\s+$top\\s*\\((\[^)\]*)\\)" $text -> params] &&
            [regexp "uint(\\d+)_t\\s*\\*?\\s*$pin\\M" $params -> bits]} {
            return $bits
        }
        error "stub: $top() in hls/bitlet_top.h has no argument '$pin', so the kernel IP no pin $path"
    }
    if {$cell eq [{*}$p counter_instance] && $pin eq "Q"} {
        set config [stub_cell_config $cell]
        return [expr {[dict exists $config CONFIG.Output_Width]
                      ? [dict get $config CONFIG.Output_Width] : 16}]
    }
    error "stub: the width of pin $path is not modelled"
}

proc create_bd_cell {args} {
    stub_record create_bd_cell {*}$args
    set opts [lrange $args 0 end-1]
    set name [lindex $args end]
    set vlnv [dict get $opts -vlnv]
    if {[dict get $opts -type] ne "ip" || [llength [split $vlnv :]] != 4} {
        error "stub: create_bd_cell needs -type ip -vlnv vendor:library:name:version, got $args"
    }
    lappend ::stub_cells $name
    return $name
}

foreach cmd {get_bd_cells get_bd_pins get_bd_intf_pins get_bd_addr_spaces get_bd_addr_segs} {
    proc $cmd {path} [format {stub_record %s $path; return [stub_cell_of $path]} $cmd]
}

proc get_files {pattern} {stub_record get_files $pattern; return $pattern}
# The IP catalog holds the kernel when the IP repository has a component.xml.
proc get_ipdefs {args} {
    stub_record get_ipdefs {*}$args
    if {[file exists [file join $::stub_iprepo component.xml]]} {
        return [lindex $args end]
    }
    return {}
}
proc get_runs {name} {return $name}
proc current_project {} {return project}
proc current_fileset {} {return sources_1}
proc get_timing_paths {args} {stub_record get_timing_paths {*}$args; return worst_path}

proc make_wrapper {args} {
    stub_record make_wrapper {*}$args
    return [file join $::stub_build wrapper.v]
}

proc get_property {name object} {
    switch -- $name {
        STATUS    {return [expr {$object eq "synth_1" ? "synth_design Complete!" : "write_bitstream Complete!"}]}
        PROGRESS  {return 100%}
        DIRECTORY {return $::stub_rundir}
        SLACK     {return $::stub_slack}
        LEFT      {return [expr {[stub_pin_width $object] - 1}]}
        RIGHT     {stub_pin_width $object; return 0}
    }
    error "stub: get_property $name is not stubbed"
}

proc report_utilization {args} {
    stub_record report_utilization {*}$args
    stub_write [lindex $args [lsearch $args -file]+1] "stub report"
}

proc report_timing_summary {args} {
    stub_record report_timing_summary {*}$args
    stub_write [lindex $args [lsearch $args -file]+1] "stub report"
}

proc stub_write {path text} {
    file mkdir [file dirname $path]
    set fh [open $path w]
    puts $fh $text
    close $fh
}

# Anything else is a Vivado command without a stub (or a typo).
proc unknown {args} {
    error "stub: command '[lindex $args 0]' is not stubbed (called as: $args)"
}

# What Vivado would leave behind: the bitstream and the hardware handoff.
set stub_design bitlet_bd
stub_write [file join $stub_rundir ${stub_design}_wrapper.bit] "stub bitstream"
# The .hwh of this block design: the shipped stand-in that make_metadata.py
# writes from the same table (what the Vivado-written one must match).
set stub_standin [file join [file dirname [file dirname [file normalize [info script]]]] \
                      drivers overlays $stub_board $stub_kind.hwh]
set stub_hwh "<EDKSYSTEM/>"
if {[file isfile $stub_standin]} {
    set fh [open $stub_standin r]
    set stub_hwh [string trimright [read $fh] "\n"]
    close $fh
}
stub_write [file join $stub_build stub.gen sources_1 bd $stub_design hw_handoff $stub_design.hwh] \
    $stub_hwh
if {$stub_ip} {
    stub_write [file join $stub_iprepo component.xml] "stub IP-XACT"
}

set BITLET_NO_MAIN 1
source [file join [file dirname [file normalize [info script]]] build.tcl]
if {[bitlet_param $stub_board $stub_kind design_name] ne $stub_design} {
    error "stub: design_name changed; update dry_run.tcl"
}
set status [catch {bitlet_main $stub_tclargs} result]
set fh [open [file join $stub_work calls.txt] w]
foreach call $stub_calls {
    puts $fh [list {*}$call]
}
close $fh
if {$status} {
    puts stderr $result
    exit 1
}
puts "dry run of $stub_board/$stub_kind: [llength $stub_calls] Vivado calls, see $stub_work/calls.txt"
