# bd.tcl -- the Bitlet overlay block design, for every board and kernel kind.
#
# Sourced by build.tcl inside a Vivado project whose IP repository holds the
# kernel IP exported by Vitis HLS.  Defines `bitlet_create_bd board kind`,
# which builds:
#
#   PS (processing_system7 | zynq_ultra_ps_e, board preset)
#    |- GP master (M_AXI_GP0 | M_AXI_HPM0_FPD) -> ps_axi_periph (axi_interconnect)
#    |     |- M00 -> <kernel>/s_axi_control   (registers of hls/bitlet_hw.h)
#    |     `- M01 -> axi_intc_0/s_axi
#    |- HP slave  (S_AXI_HP0 | S_AXI_HP0_FPD) <- axi_smc <- <kernel>/m_axi_gmem
#    |- IRQ (IRQ_F2P | pl_ps_irq0) <- axi_intc_0/irq;  axi_intc_0/intr <- <kernel>/interrupt
#    |- cycle_counter (c_counter_binary, 64 bit, free-running) Q -> <kernel>/timestamp
#    `- PL clock 0 at clock_mhz -> every clock pin; rst_ps_pl -> every reset
#       (peripheral_reset, active high, -> cycle_counter/SCLR)
#
# Instance names, ports, base addresses and the clock come from boards.tcl,
# the kernel VLNV from hls/bitlet_hw.h.  overlay/make_metadata.py writes the
# .hwh of this same design (tests/test_overlay.py checks they agree).

source [file join [file dirname [file normalize [info script]]] common.tcl]

proc bitlet_pin {cell pin} {
    return [get_bd_pins $cell/$pin]
}

proc bitlet_intf {cell intf} {
    return [get_bd_intf_pins $cell/$intf]
}

# The processing system with the board preset, the GP/HP ports, the fabric
# interrupt and PL clock 0 at the target frequency.
proc bitlet_bd_ps {board kind} {
    set name [bitlet_param $board $kind ps_instance]
    set ps [create_bd_cell -type ip -vlnv [bitlet_param $board $kind ps_vlnv] $name]
    apply_bd_automation -rule [bitlet_param $board $kind automation] \
        -config [bitlet_param $board $kind automation_cfg] $ps
    set config {}
    dict for {key value} [bitlet_ps_config $board $kind] {
        lappend config CONFIG.$key $value
    }
    set_property -dict $config $ps
    return $name
}

# A cell of IP `vlnv` named `name`, with the CONFIG.<key> values of the dict
# `config` (if any); returns the name.
proc bitlet_bd_ip {vlnv name {config {}}} {
    create_bd_cell -type ip -vlnv $vlnv $name
    if {[dict size $config]} {
        set props {}
        dict for {key value} $config {
            lappend props CONFIG.$key $value
        }
        set_property -dict $props [get_bd_cells $name]
    }
    return $name
}

# Kernel, interconnects, interrupt controller, reset and cycle counter, by name.
proc bitlet_bd_cells {board kind} {
    set p [list bitlet_param $board $kind]
    set kernel [bitlet_bd_ip [bitlet_vlnv $kind] [{*}$p instance]]
    set periph [bitlet_bd_ip [{*}$p periph_vlnv] [{*}$p periph_instance] {NUM_SI 1 NUM_MI 2}]
    set smc [bitlet_bd_ip [{*}$p smc_vlnv] [{*}$p smc_instance] {NUM_SI 1 NUM_MI 1}]
    set intc [bitlet_bd_ip [{*}$p intc_vlnv] [{*}$p intc_instance] [{*}$p intc_config]]
    set rst [bitlet_bd_ip [{*}$p reset_vlnv] [{*}$p reset_instance]]
    # The free-running cycle counter of the kernel clock: AMD's Binary Counter
    # (PG121, xilinx.com:ip:c_counter_binary:12.0), an up counter by 1 with
    # no CE (counts every clock) and CONFIG.SCLR true (SCLR: synchronous
    # clear, active high), Q = CONFIG.Output_Width bits.
    set counter [bitlet_bd_ip [{*}$p counter_vlnv] [{*}$p counter_instance] \
                     [{*}$p counter_config]]
    return [dict create kernel $kernel periph $periph smc $smc intc $intc rst $rst \
                counter $counter]
}

# Bits of a block-design pin (UG912 BD_PIN: LEFT and RIGHT; empty on a
# scalar pin).
proc bitlet_pin_width {pin} {
    set left [get_property LEFT $pin]
    set right [get_property RIGHT $pin]
    if {$left eq "" && $right eq ""} {
        return 1
    }
    return [expr {abs($left - $right) + 1}]
}

# The kernel's `timestamp` input (hls/bitlet_top.h: an ap_none read-only
# pointer to a volatile 64-bit scalar, i.e. a plain data port named after the
# argument and read at each stamp, UG1399 "Port-Level I/O: No Protocol")
# <- the counter's Q.  A width mismatch would only be a critical
# warning of connect_bd_net/validate_bd_design, and the stamps wrong: refuse
# it here.
proc bitlet_bd_timestamp {board kind cells} {
    set p [list bitlet_param $board $kind]
    dict with cells {
        set q [bitlet_pin $counter Q]
        set ts [bitlet_pin $kernel [{*}$p timestamp_pin]]
        set q_bits [bitlet_pin_width $q]
        set ts_bits [bitlet_pin_width $ts]
        if {$q_bits != $ts_bits} {
            error "the cycle counter $counter/Q has $q_bits bits but the kernel's\
                $kernel/[{*}$p timestamp_pin] input $ts_bits: set Output_Width of\
                counter_config in overlay/boards.tcl to $ts_bits"
        }
        connect_bd_net $q $ts
    }
}

# AXI: PS GP -> periph -> kernel control and intc; kernel m_axi -> smc -> PS HP.
proc bitlet_bd_buses {board kind ps cells} {
    set p [list bitlet_param $board $kind]
    dict with cells {
        connect_bd_intf_net [bitlet_intf $ps [{*}$p gp_port]] [bitlet_intf $periph S00_AXI]
        connect_bd_intf_net [bitlet_intf $periph M00_AXI] [bitlet_intf $kernel [{*}$p s_axi_intf]]
        connect_bd_intf_net [bitlet_intf $periph M01_AXI] [bitlet_intf $intc s_axi]
        connect_bd_intf_net [bitlet_intf $kernel [{*}$p m_axi_intf]] [bitlet_intf $smc S00_AXI]
        connect_bd_intf_net [bitlet_intf $smc M00_AXI] [bitlet_intf $ps [{*}$p hp_port]]
    }
}

# Interrupt, clock and resets.
proc bitlet_bd_nets {board kind ps cells} {
    set p [list bitlet_param $board $kind]
    dict with cells {
        connect_bd_net [bitlet_pin $kernel interrupt] [bitlet_pin $intc intr]
        connect_bd_net [bitlet_pin $intc irq] [bitlet_pin $ps [{*}$p irq_port]]
        set clocks [list [bitlet_pin $kernel ap_clk] [bitlet_pin $smc aclk] \
                        [bitlet_pin $intc s_axi_aclk] [bitlet_pin $rst slowest_sync_clk] \
                        [bitlet_pin $periph ACLK] [bitlet_pin $counter CLK]]
        foreach port {S00 M00 M01} {
            lappend clocks [bitlet_pin $periph ${port}_ACLK]
        }
        foreach sink [{*}$p clk_sinks] {
            lappend clocks [bitlet_pin $ps $sink]
        }
        connect_bd_net [bitlet_pin $ps [{*}$p clk_port]] {*}$clocks
        connect_bd_net [bitlet_pin $ps [{*}$p rst_port]] [bitlet_pin $rst ext_reset_in]
        connect_bd_net [bitlet_pin $rst interconnect_aresetn] [bitlet_pin $periph ARESETN]
        set resets [list [bitlet_pin $kernel ap_rst_n] [bitlet_pin $smc aresetn] \
                        [bitlet_pin $intc s_axi_aresetn]]
        foreach port {S00 M00 M01} {
            lappend resets [bitlet_pin $periph ${port}_ARESETN]
        }
        connect_bd_net [bitlet_pin $rst peripheral_aresetn] {*}$resets
        # the counter restarts from 0 only with the PL (no kernel reset stops it)
        connect_bd_net [bitlet_pin $rst peripheral_reset] [bitlet_pin $counter SCLR]
    }
}

# Address map: the kernel's registers and the interrupt controller at the
# board's fixed bases in the PS data space; PS DDR in the kernel's space.
proc bitlet_bd_addresses {board kind ps cells} {
    set p [list bitlet_param $board $kind]
    set space [get_bd_addr_spaces $ps/Data]
    dict with cells {
        assign_bd_address -offset [bitlet_hex [{*}$p ctrl_base]] \
            -range [bitlet_hex [{*}$p ctrl_range]] -target_address_space $space \
            [get_bd_addr_segs $kernel/[{*}$p s_axi_intf]/Reg] -force
        assign_bd_address -offset [bitlet_hex [{*}$p intc_base]] \
            -range [bitlet_hex [{*}$p intc_range]] -target_address_space $space \
            [get_bd_addr_segs $intc/S_AXI/Reg] -force
        set kspace [get_bd_addr_spaces $kernel/Data_[{*}$p m_axi_intf]]
        foreach {segment low high} [{*}$p ddr_segments] {
            assign_bd_address -target_address_space $kspace \
                [get_bd_addr_segs $ps/[{*}$p hp_seg_intf]/$segment] -force
        }
    }
}

# Create, connect, address and validate the block design; returns its name.
proc bitlet_create_bd {board kind} {
    set design [bitlet_param $board $kind design_name]
    create_bd_design $design
    set ps [bitlet_bd_ps $board $kind]
    set cells [bitlet_bd_cells $board $kind]
    bitlet_bd_buses $board $kind $ps $cells
    bitlet_bd_nets $board $kind $ps $cells
    bitlet_bd_timestamp $board $kind $cells
    bitlet_bd_addresses $board $kind $ps $cells
    validate_bd_design
    save_bd_design
    return $design
}
