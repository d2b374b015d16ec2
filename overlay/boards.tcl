# boards.tcl -- the ONE table of per-board and per-kernel parameters of the
# Bitlet overlays.  Read by the Vivado scripts (bd.tcl, build.tcl), by the
# Makefile (through `tclsh overlay/params.tcl`) and by
# overlay/make_metadata.py (which writes the .hwh/.json the SDK ships).
#
# Format: plain Tcl dictionaries of words and braced lists, no commands
# besides `set`, no substitutions, so that Python can read it too.
#
# Register offsets, VLNV strings, buffer sizes and ISA constants are NOT
# here: they come from hls/bitlet_hw.h (Python: bitlet.hw).

# Design-wide settings (identical on every board).
set BITLET_COMMON {
    design_name      bitlet_bd
    s_axi_intf       s_axi_control
    m_axi_intf       m_axi_gmem
    ctrl_range       0x10000
    intc_range       0x10000
    intc_vlnv        xilinx.com:ip:axi_intc:4.1
    periph_vlnv      xilinx.com:ip:axi_interconnect:2.1
    smc_vlnv         xilinx.com:ip:smartconnect:1.0
    reset_vlnv       xilinx.com:ip:proc_sys_reset:5.0
    periph_instance  ps_axi_periph
    smc_instance     axi_smc
    intc_instance    axi_intc_0
    reset_instance   rst_ps_pl
    vivado_version   2022.1
}

# Per kernel kind: the HLS top (the IP name comes from the header:
# BITLET_IP_NAME / BITLET_VENDOR_IP_NAME) and the block-design instance.
set BITLET_KINDS {
    bitlet    {top bitlet_top    instance bitlet_0}
    vendor_fp {top vendor_fp_top instance vendor_fp_0}
}

# Per board.  n_pe is per kernel kind: one 64-MAC Bitlet PE is ~2.6k LUT,
# one 64-MAC vendor floating-point PE is ~33k-36k LUT (the paper's figures),
# so the vendor baseline fits fewer PEs.  clock_mhz must equal the kernel's
# BITLET_CLOCK_MHZ (reported in ID_CONFIG) unless the kernel is rebuilt
# with a different value.
set BITLET_BOARDS {
    pynqz2 {
        title          {TUL PYNQ-Z2 (Zynq-7020)}
        part           xc7z020clg400-1
        board_part     tul.com.tw:pynq-z2:part0:1.0
        arch           zynq
        device         7z020
        package        clg400
        speedgrade     -1
        ps_type        processing_system7
        ps_vlnv        xilinx.com:ip:processing_system7:5.5
        ps_instance    processing_system7_0
        gp_port        M_AXI_GP0
        hp_port        S_AXI_HP0
        hp_data_width  64
        irq_port       IRQ_F2P
        clk_port       FCLK_CLK0
        rst_port       FCLK_RESET0_N
        ctrl_base      0x40000000
        intc_base      0x41800000
        ddr_segments   {HP0_DDR_LOWOCM 0x00000000 0x1FFFFFFF}
        clock_mhz      200
        pll            {IO_PLL 1000}
        n_pe           {bitlet 4 vendor_fp 1}
        detect         {Pynq-Z2 pynq-z2 pynqz2}
    }
    zcu104 {
        title          {Xilinx ZCU104 (Zynq UltraScale+ ZU7EV)}
        part           xczu7ev-ffvc1156-2-e
        board_part     xilinx.com:zcu104:part0:1.1
        arch           zynquplus
        device         xczu7ev
        package        ffvc1156
        speedgrade     -2
        ps_type        zynq_ultra_ps_e
        ps_vlnv        xilinx.com:ip:zynq_ultra_ps_e:3.4
        ps_instance    zynq_ultra_ps_e_0
        gp_port        M_AXI_HPM0_FPD
        hp_port        S_AXI_HP0_FPD
        hp_data_width  128
        irq_port       pl_ps_irq0
        clk_port       pl_clk0
        rst_port       pl_resetn0
        ctrl_base      0xA0000000
        intc_base      0xA0010000
        ddr_segments   {HP0_DDR_LOW 0x00000000 0x7FFFFFFF}
        clock_mhz      200
        pll            {IOPLL 1000}
        n_pe           {bitlet 16 vendor_fp 4}
        detect         {ZCU104 zcu104}
    }
    kv260 {
        title          {Kria KV260 (Zynq UltraScale+ K26 SOM)}
        part           xck26-sfvc784-2LV-c
        board_part     xilinx.com:kv260_som:part0:1.4
        arch           zynquplus
        device         xck26
        package        sfvc784
        speedgrade     -2LV
        ps_type        zynq_ultra_ps_e
        ps_vlnv        xilinx.com:ip:zynq_ultra_ps_e:3.4
        ps_instance    zynq_ultra_ps_e_0
        gp_port        M_AXI_HPM0_FPD
        hp_port        S_AXI_HP0_FPD
        hp_data_width  128
        irq_port       pl_ps_irq0
        clk_port       pl_clk0
        rst_port       pl_resetn0
        ctrl_base      0xA0000000
        intc_base      0xA0010000
        ddr_segments   {HP0_DDR_LOW 0x00000000 0x7FFFFFFF HP0_DDR_HIGH 0x800000000 0x87FFFFFFF}
        clock_mhz      200
        pll            {IOPLL 1000}
        n_pe           {bitlet 8 vendor_fp 2}
        detect         {KV260 kv260 K26 k26}
    }
}
