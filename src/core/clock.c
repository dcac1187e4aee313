/* SPDX-License-Identifier: Apache-2.0 */
/*
 * clock.c: see clock.h. The only place the engine's layers read the system clocks.
 */
#include "core/clock.h"

#include <time.h>

static int64_t real_mono_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_unix_s(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}

const struct wd_clock wd_clock_real = {real_mono_ms, real_unix_s, NULL};
