# board_param.tcl -- print one overlay parameter (used by the Makefile).
#
#   tclsh overlay/board_param.tcl <board> <kind> <key>
#   e.g. tclsh overlay/board_param.tcl kv260 bitlet part  ->  xck26-sfvc784-2LV-c
source [file join [file dirname [file normalize [info script]]] common.tcl]

if {[llength $argv] != 3} {
    puts stderr "usage: tclsh board_param.tcl <board> <kind> <key>"
    exit 2
}
lassign $argv board kind key
if {[catch {puts [bitlet_param $board $kind $key]} message]} {
    puts stderr "board_param.tcl: $message"
    exit 1
}
