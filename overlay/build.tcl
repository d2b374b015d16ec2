# build.tcl -- Vivado batch build of one Bitlet overlay: project, block design
# (bd.tcl), wrapper, synthesis, implementation, bitstream, reports, and the
# .bit/.hwh/.rpt installed where the SDK looks (drivers/overlays/<board>/, bitlet.drivers.overlays).
#
#   vivado -mode batch -source overlay/build.tcl -tclargs \
#       <board> <kind> <ip_repo> <build_dir> <install_dir> [jobs] [allow_timing_failure]
#
# Normally run through the Makefile (`make BOARD=pynqz2 KIND=bitlet`).
# Fails (exit status 1, message on stderr) when a run fails or, unless
# allow_timing_failure is 1, when the routed design misses timing.

source [file join [file dirname [file normalize [info script]]] bd.tcl]

proc bitlet_fail {message} {
    puts stderr "ERROR: \[bitlet overlay\] $message"
    exit 1
}

proc bitlet_run {run step} {
    wait_on_run $run
    set status [get_property STATUS [get_runs $run]]
    if {[get_property PROGRESS [get_runs $run]] ne "100%" || ![string match "*Complete*" $status]} {
        bitlet_fail "$run did not complete ($status); see [get_property DIRECTORY [get_runs $run]]/runme.log"
    }
    puts "INFO: \[bitlet overlay\] $run: $status"
}

proc bitlet_build_project {board kind ip_repo build_dir} {
    set part [bitlet_param $board $kind part]
    create_project -force bitlet_$board\_$kind $build_dir -part $part
    set_property board_part [bitlet_param $board $kind board_part] [current_project]
    set_property ip_repo_paths [list $ip_repo] [current_project]
    update_ip_catalog -rebuild
    set vlnv [bitlet_param $board $kind vlnv]
    if {[llength [get_ipdefs -all $vlnv]] == 0} {
        bitlet_fail "the IP repository $ip_repo holds no $vlnv: run the HLS step\
            (make hls BOARD=$board KIND=$kind) or pass the directory of its component.xml"
    }
    set design [bitlet_create_bd $board $kind]
    set bd_file [get_files $design.bd]
    generate_target all $bd_file
    set wrapper [make_wrapper -files $bd_file -top]
    add_files -norecurse $wrapper
    set_property top ${design}_wrapper [current_fileset]
    return $design
}

proc bitlet_implement {jobs} {
    launch_runs synth_1 -jobs $jobs
    bitlet_run synth_1 synthesis
    launch_runs impl_1 -to_step write_bitstream -jobs $jobs
    bitlet_run impl_1 write_bitstream
    open_run impl_1
}

# Reports in the formats bitlet.drivers.overlays.reports parses; returns the worst
# setup and hold slacks in ns (WNS, WHS).
proc bitlet_reports {report_dir kind} {
    file mkdir $report_dir
    report_utilization -file [file join $report_dir $kind.utilization.rpt]
    report_utilization -hierarchical -file [file join $report_dir $kind.utilization_hier.rpt]
    report_timing_summary -max_paths 10 -file [file join $report_dir $kind.timing.rpt]
    return [list [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]] \
                 [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -hold]]]
}

# The .hwh Vivado wrote for the block design (location differs by release).
proc bitlet_find_hwh {build_dir design} {
    set found [glob -nocomplain \
                   [file join $build_dir *.gen sources_1 bd $design hw_handoff $design.hwh] \
                   [file join $build_dir *.srcs sources_1 bd $design hw_handoff $design.hwh]]
    if {[llength $found] == 0} {
        bitlet_fail "no hw_handoff/$design.hwh under $build_dir"
    }
    return [lindex $found 0]
}

proc bitlet_install {board kind build_dir report_dir install_dir design} {
    set bit [file join [get_property DIRECTORY [get_runs impl_1]] ${design}_wrapper.bit]
    if {![file exists $bit]} {
        bitlet_fail "write_bitstream reported success but $bit is missing"
    }
    file mkdir $install_dir
    file copy -force $bit [file join $install_dir $kind.bit]
    file copy -force [bitlet_find_hwh $build_dir $design] [file join $install_dir $kind.hwh]
    foreach rpt [glob -nocomplain [file join $report_dir $kind.*.rpt]] {
        file copy -force $rpt $install_dir
    }
    puts "INFO: \[bitlet overlay\] installed $kind.bit and $kind.hwh for $board in $install_dir"
}

proc bitlet_main {argv} {
    if {[llength $argv] < 5} {
        bitlet_fail "usage: build.tcl <board> <kind> <ip_repo> <build_dir> <install_dir> \[jobs\] \[allow_timing_failure\]"
    }
    lassign $argv board kind ip_repo build_dir install_dir jobs allow_fail
    if {$jobs eq ""} {set jobs 2}
    if {$allow_fail eq ""} {set allow_fail 0}
    bitlet_param $board $kind part  ;# validates board and kind
    if {![file isdirectory $ip_repo]} {
        bitlet_fail "IP repository $ip_repo does not exist: run the HLS step first (make hls)"
    }
    set design [bitlet_build_project $board $kind $ip_repo $build_dir]
    bitlet_implement $jobs
    set report_dir [file join $build_dir reports]
    lassign [bitlet_reports $report_dir $kind] wns whs
    if {($wns < 0 || $whs < 0) && !$allow_fail} {
        bitlet_fail "timing not met at [bitlet_param $board $kind clock_mhz] MHz (WNS $wns ns,\
            WHS $whs ns); see $report_dir/$kind.timing.rpt, lower clock_mhz in boards.tcl (and the\
            kernel's BITLET_CLOCK_MHZ), or pass ALLOW_TIMING_FAILURE=1"
    }
    bitlet_install $board $kind $build_dir $report_dir $install_dir $design
}

if {[info exists argv] && ![info exists BITLET_NO_MAIN]} {
    bitlet_main $argv
}
