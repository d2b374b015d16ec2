# boards.tcl -- the ONE table of per-board and per-kernel parameters of the
# Bitlet overlays.  Read by the Vivado scripts (bd.tcl, build.tcl), by the
# Makefile (through `tclsh overlay/board_param.tcl`) and by
# overlay/make_metadata.py (which writes the .hwh/.json the SDK ships).
#
# Format: plain Tcl dictionaries of words and braced lists, no commands
# besides `set`, no substitutions, so that Python can read it too.
#
# Register offsets, VLNV strings, buffer sizes and ISA constants are NOT
# here: they come from hls/bitlet_hw.h (Python: bitlet.hw).

# Design-wide settings (identical on every board).  counter_*: the
# free-running cycle counter that feeds the kernel's `timestamp` input
# (AMD Binary Counter, PG121: CONFIG.Output_Width = Q bits, CONFIG.SCLR = a
# synchronous clear input, tied to the PL reset); its width must be the one
# of the top's `timestamp` argument in hls/bitlet_top.h (bd.tcl checks).
# timestamp_pin: that ap_none input port, named after the argument (UG1399).
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
    intc_config      {C_IRQ_CONNECTION 1 C_IRQ_IS_LEVEL 1 C_KIND_OF_INTR 0xFFFFFFFF}
    counter_vlnv     xilinx.com:ip:c_counter_binary:12.0
    counter_instance cycle_counter
    counter_config   {Output_Width 64 SCLR true}
    timestamp_pin    timestamp
}

# Per processing-system type: the IP, its ports and how to configure it.
# ps_config is applied with set_property -dict; %CLOCK_MHZ% and
# %HP_WIDTH% are replaced by the board's values.  pynq_irq_base is the GIC
# interrupt of the first PL-to-PS line (what pynq reports as raw_irq).
set BITLET_PS {
    processing_system7 {
        ps_vlnv        xilinx.com:ip:processing_system7:5.5
        automation     xilinx.com:bd_rule:processing_system7
        automation_cfg {make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"}
        gp_port        M_AXI_GP0
        gp_prefix      M_AXI_GP0_
        gp_addr_width  32
        gp_id_width    12
        hp_port        S_AXI_HP0
        hp_prefix      S_AXI_HP0_
        hp_addr_width  32
        hp_seg_intf    S_AXI_HP0
        port_case      upper
        clk_sinks      {M_AXI_GP0_ACLK S_AXI_HP0_ACLK}
        irq_port       IRQ_F2P
        clk_port       FCLK_CLK0
        rst_port       FCLK_RESET0_N
        pynq_irq_base  61
        ps_config      {PCW_USE_M_AXI_GP0 1 PCW_USE_S_AXI_HP0 1 PCW_S_AXI_HP0_DATA_WIDTH %HP_WIDTH% PCW_USE_FABRIC_INTERRUPT 1 PCW_IRQ_F2P_INTR 1 PCW_EN_CLK0_PORT 1 PCW_FPGA0_PERIPHERAL_FREQMHZ %CLOCK_MHZ%}
    }
    zynq_ultra_ps_e {
        ps_vlnv        xilinx.com:ip:zynq_ultra_ps_e:3.4
        automation     xilinx.com:bd_rule:zynq_ultra_ps_e
        automation_cfg {apply_board_preset "1"}
        gp_port        M_AXI_HPM0_FPD
        gp_prefix      maxigp0_
        gp_addr_width  40
        gp_id_width    16
        hp_port        S_AXI_HP0_FPD
        hp_prefix      saxigp2_
        hp_addr_width  49
        hp_seg_intf    SAXIGP2
        port_case      lower
        clk_sinks      {maxihpm0_fpd_aclk saxihp0_fpd_aclk}
        irq_port       pl_ps_irq0
        clk_port       pl_clk0
        rst_port       pl_resetn0
        pynq_irq_base  121
        ps_config      {PSU__USE__M_AXI_GP0 1 PSU__USE__M_AXI_GP1 0 PSU__USE__M_AXI_GP2 0 PSU__MAXIGP0__DATA_WIDTH 32 PSU__USE__S_AXI_GP2 1 PSU__SAXIGP2__DATA_WIDTH %HP_WIDTH% PSU__USE__IRQ0 1 PSU__FPGA_PL0_ENABLE 1 PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ %CLOCK_MHZ%}
    }
}

# Per kernel kind: the HLS top (the IP name comes from the header:
# BITLET_IP_NAME / BITLET_VENDOR_IP_NAME) and the block-design instance.
set BITLET_KINDS {
    bitlet    {top bitlet_top    instance bitlet_0}
    vendor_fp {top vendor_fp_top instance vendor_fp_0}
}

# Per board.  n_pe (per kernel kind) is the kernel's BITLET_N_PE: Bitlet PEs
# of 64 bit-interleaved MACs each, or vendor-FP MAC units of
# BITLET_VENDOR_LANES (4) fp32 multipliers each (hls/vendor_kernel.c).
# n_pe is WRITTEN by `python overlay/size_boards.py --write` from the
# resource model (bitlet.tools.resources.overlay_n_pe): each kind at the
# largest n_pe that fits the board within the model's utilisation limit,
# with the Bitlet PE's area from the yosys report hls/rtl/area_report.json,
# and at least 1 (a kind whose one PE exceeds the limit is flagged there);
# tests/test_resources.py fails when this table disagrees.  The two kinds of
# a board therefore differ: a program is compiled for the overlay it runs on
# (the compiler tiles for n_pe; the runtime refuses a program compiled for
# another kind or n_pe).  clock_mhz is the
# PL clock and the kernel's BITLET_CLOCK_MHZ (reported in ID_CONFIG): while
# hls/bitlet_hw.h fixes that value, every board must use it
# (run_hls.tcl and make_metadata.py refuse another).
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
        ps_instance    processing_system7_0
        hp_data_width  64
        ctrl_base      0x40000000
        intc_base      0x41800000
        ddr_segments   {HP0_DDR_LOWOCM 0x00000000 0x1FFFFFFF}
        clock_mhz      200
        pll            {IO_PLL 1000}
        n_pe           {bitlet 1 vendor_fp 5}
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
        ps_instance    zynq_ultra_ps_e_0
        hp_data_width  128
        ctrl_base      0xA0000000
        intc_base      0xA0010000
        ddr_segments   {HP0_DDR_LOW 0x00000000 0x7FFFFFFF}
        clock_mhz      200
        pll            {IOPLL 1000}
        n_pe           {bitlet 5 vendor_fp 45}
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
        ps_instance    zynq_ultra_ps_e_0
        hp_data_width  128
        ctrl_base      0xA0000000
        intc_base      0xA0010000
        ddr_segments   {HP0_DDR_LOW 0x00000000 0x7FFFFFFF HP0_DDR_HIGH 0x800000000 0x87FFFFFFF}
        clock_mhz      200
        pll            {IOPLL 1000}
        n_pe           {bitlet 2 vendor_fp 13}
        detect         {KV260 kv260 K26 k26}
    }
}
