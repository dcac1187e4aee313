/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.c: see metrics.h. Each counter sits on its own cache line so that two workers
 * bumping different counters do not contend.
 */
#include "core/metrics.h"

#include <stdatomic.h>

struct slot {
    _Atomic uint64_t v;
    char pad[64 - sizeof(uint64_t)];
};

static struct slot counters[WD_M__COUNT];

static const char *const names[] = {
#define WD_METRIC_NAME(id, name, help) name,
    WD_METRICS_MAP(WD_METRIC_NAME)
#undef WD_METRIC_NAME
};

static const char *const helps[] = {
#define WD_METRIC_HELP(id, name, help) help,
    WD_METRICS_MAP(WD_METRIC_HELP)
#undef WD_METRIC_HELP
};

void wd_metrics_inc(enum wd_metric m)
{
    atomic_fetch_add_explicit(&counters[m].v, 1, memory_order_relaxed);
}

void wd_metrics_add(enum wd_metric m, uint64_t n)
{
    atomic_fetch_add_explicit(&counters[m].v, n, memory_order_relaxed);
}

uint64_t wd_metrics_get(enum wd_metric m)
{
    return atomic_load_explicit(&counters[m].v, memory_order_relaxed);
}

const char *wd_metrics_name(enum wd_metric m)
{
    return (unsigned)m < WD_M__COUNT ? names[m] : "?";
}

const char *wd_metrics_help(enum wd_metric m)
{
    return (unsigned)m < WD_M__COUNT ? helps[m] : "?";
}
