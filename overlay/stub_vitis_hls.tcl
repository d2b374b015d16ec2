# stub_vitis_hls.tcl -- stands in for `vitis_hls` under plain tclsh (no Vitis
# HLS needed): runs the script of `-f` with the arguments after `-tclargs`,
# every Vitis HLS command replaced by a stub that records the call.
#
#   tclsh overlay/stub_vitis_hls.tcl -f hls/run_hls.tcl -tclargs bitlet xc7z020clg400-1 csynth,export
#   make hls VITIS_HLS="tclsh overlay/stub_vitis_hls.tcl"      (what `make dry-run` does)
#
# Writes ./vitis_hls_calls.txt (one Tcl list per call, the working directory
# of the call first) and, for export_design, what Vitis HLS exports:
# <project>/<solution>/impl/ip/component.xml with the VLNV it was given.
# Exits 1 with the message on stderr when the script fails or calls a
# command that is not stubbed.

set stub_calls {}
set stub_project ""
set stub_solution ""

proc stub_record {args} {
    lappend ::stub_calls [list [pwd] {*}$args]
}

proc stub_finish {status message} {
    set fh [open [file join $::stub_start vitis_hls_calls.txt] w]
    foreach call $::stub_calls {
        puts $fh $call
    }
    close $fh
    if {$status} {
        puts stderr $message
    }
    ::stub_real_exit $status
}

# The value following `flag` in an argument list ("" when absent).
proc stub_opt {arguments flag} {
    set i [lsearch -exact $arguments $flag]
    return [expr {$i < 0 ? "" : [lindex $arguments $i+1]}]
}

foreach cmd {set_top add_files set_part create_clock csim_design csynth_design
             cosim_design} {
    proc $cmd {args} [format {stub_record %s {*}$args; return ""} $cmd]
}

proc open_project {args} {
    stub_record open_project {*}$args
    set ::stub_project [file join [pwd] [lindex $args end]]
    file mkdir $::stub_project
}

proc open_solution {args} {
    stub_record open_solution {*}$args
    if {$::stub_project eq ""} {
        error "stub: open_solution before open_project"
    }
    set name [lindex [lsearch -all -inline -not -glob $args -*] 0]
    set ::stub_solution [file join $::stub_project $name]
    file mkdir $::stub_solution
}

proc export_design {args} {
    stub_record export_design {*}$args
    if {$::stub_solution eq ""} {
        error "stub: export_design without an open solution"
    }
    set vlnv [join [list [stub_opt $args -vendor] [stub_opt $args -library] \
                        [stub_opt $args -ipname] [stub_opt $args -version]] :]
    set ip [file join $::stub_solution impl ip]
    file mkdir $ip
    set fh [open [file join $ip component.xml] w]
    puts $fh "<!-- stub IP-XACT written by stub_vitis_hls.tcl -->"
    puts $fh "<component vlnv=\"$vlnv\"/>"
    close $fh
}

proc unknown {args} {
    if {[string match config_* [lindex $args 0]]} {
        stub_record {*}$args
        return ""
    }
    error "stub: Vitis HLS command '[lindex $args 0]' is not stubbed (called as: $args)"
}

# ------------------------------------------------------------ command line
set stub_start [pwd]
set stub_script [stub_opt $argv -f]
if {$stub_script eq ""} {
    puts stderr "usage: tclsh stub_vitis_hls.tcl -f <script.tcl> ?-tclargs args...?"
    exit 2
}
set stub_i [lsearch -exact $argv -tclargs]
set argv [expr {$stub_i < 0 ? {} : [lrange $argv $stub_i+1 end]}]
set argc [llength $argv]
rename exit stub_real_exit
proc exit {{status 0}} {
    stub_record exit $status
    stub_finish $status ""
}
set stub_status [catch {source $stub_script} stub_message]
stub_finish $stub_status $stub_message
