/*
 * tb_live_timestamp.h -- the testbench seam of the kernel's clock stamps,
 * force-included (gcc -include) into every file of the live-stamp build of
 * tb_kernel.c (make test-kernel, build/tb_kernel_live), which also defines
 * BITLET_TB_LIVE_TIMESTAMP: the stamps then take the synthesis path (a read
 * of the `timestamp` port per stamp, hls/bitlet_kernel.c stamp()), and each
 * read goes through tb_timestamp_read(), which counts it and returns
 * *port + TB_TS_STEP * (reads so far): a free-running counter that shows in
 * every stamp which read of the port it is.
 */
#ifndef TB_LIVE_TIMESTAMP_H
#define TB_LIVE_TIMESTAMP_H
#include <stdint.h>

#define TB_TS_STEP 7u

uint64_t tb_timestamp_read(const volatile uint64_t *port);
#define BITLET_TIMESTAMP_READ(p) tb_timestamp_read(p)

#endif /* TB_LIVE_TIMESTAMP_H */
