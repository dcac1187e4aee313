/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.c: see metrics.h. Each counter sits on its own cache line so that two workers
 * bumping different counters do not contend; a histogram's buckets share lines (one
 * observation touches one bucket and the sum).
 */
#include "core/metrics.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

struct slot {
    _Atomic uint64_t v;
    char pad[64 - sizeof(uint64_t)];
};

static struct slot counters[WD_M__COUNT];

struct hist {
    _Atomic uint64_t bucket[WD_METRICS_BUCKETS + 1]; /* non-cumulative; the last is +Inf */
    _Atomic uint64_t sum_ns;
} __attribute__((aligned(64)));

static struct hist hists[WD_H__COUNT];

static const char *const names[] = {
#define WD_METRIC_NAME(id, stat, family, labels, help) stat,
    WD_METRICS_MAP(WD_METRIC_NAME)
#undef WD_METRIC_NAME
};

static const char *const families[] = {
#define WD_METRIC_FAMILY(id, stat, family, labels, help) family,
    WD_METRICS_MAP(WD_METRIC_FAMILY)
#undef WD_METRIC_FAMILY
};

static const char *const labelsets[] = {
#define WD_METRIC_LABELS(id, stat, family, labels, help) labels,
    WD_METRICS_MAP(WD_METRIC_LABELS)
#undef WD_METRIC_LABELS
};

static const char *const helps[] = {
#define WD_METRIC_HELP(id, stat, family, labels, help) help,
    WD_METRICS_MAP(WD_METRIC_HELP)
#undef WD_METRIC_HELP
};

static const char *const hist_families[] = {
#define WD_HIST_FAMILY(id, family, labels) family,
    WD_HISTOGRAMS_MAP(WD_HIST_FAMILY)
#undef WD_HIST_FAMILY
};

static const char *const hist_labels[] = {
#define WD_HIST_LABELS(id, family, labels) labels,
    WD_HISTOGRAMS_MAP(WD_HIST_LABELS)
#undef WD_HIST_LABELS
};

static const char *hist_help(const char *family)
{
    if (strcmp(family, "warden_call_duration_seconds") == 0)
        return "ExHook call latency by hook: request complete to reply, waits on Redis and "
               "hash threads included (transport h2)";
    return "Redis lookup latency: command sent to reply (asynchronous client)";
}

const uint64_t wd_metrics_bucket_ns[WD_METRICS_BUCKETS] = {
    50000,    100000,   250000,   500000,    1000000,   2500000,   5000000,
    10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
};

/* the same bounds as exposition text: exact decimal, no float formatting */
static const char *const bucket_le[WD_METRICS_BUCKETS] = {
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
    "0.01",    "0.025",  "0.05",    "0.1",    "0.25",  "0.5",    "1",
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

const char *wd_metrics_family(enum wd_metric m)
{
    return (unsigned)m < WD_M__COUNT ? families[m] : "?";
}

const char *wd_metrics_labels(enum wd_metric m)
{
    return (unsigned)m < WD_M__COUNT ? labelsets[m] : "";
}

const char *wd_metrics_help(enum wd_metric m)
{
    return (unsigned)m < WD_M__COUNT ? helps[m] : "?";
}

void wd_metrics_observe(enum wd_histogram h, uint64_t ns)
{
    unsigned i = 0;
    while (i < WD_METRICS_BUCKETS && ns > wd_metrics_bucket_ns[i])
        i++;
    atomic_fetch_add_explicit(&hists[h].bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&hists[h].sum_ns, ns, memory_order_relaxed);
}

void wd_metrics_hist_get(enum wd_histogram h, struct wd_metrics_hist_snapshot *out)
{
    uint64_t acc = 0;
    for (unsigned i = 0; i <= WD_METRICS_BUCKETS; i++) {
        acc += atomic_load_explicit(&hists[h].bucket[i], memory_order_relaxed);
        out->cumulative[i] = acc;
    }
    out->count = acc;
    out->sum_ns = atomic_load_explicit(&hists[h].sum_ns, memory_order_relaxed);
}

uint64_t wd_metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

char *wd_metrics_label_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    if (cap == 0)
        return out;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '"')
            rep = "\\\"";
        else if (*s == '\n')
            rep = "\\n";
        size_t n = rep ? 2 : 1;
        if (o + n >= cap)
            break;
        if (rep)
            memcpy(out + o, rep, 2);
        else
            out[o] = *s;
        o += n;
    }
    out[o] = '\0';
    return out;
}

static void header(struct wd_buf *out, const char *family, const char *type, const char *help)
{
    /* a counter family's HELP/TYPE name drops _total (OpenMetrics); text format 0.0.4 keeps
     * the sample name, which is what Prometheus expects from this format */
    wd_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", family, help, family, type);
}

static void render_hist(struct wd_buf *out, enum wd_histogram h)
{
    struct wd_metrics_hist_snapshot s;
    wd_metrics_hist_get(h, &s);
    const char *f = hist_families[h], *l = hist_labels[h];
    const char *sep = l[0] ? "," : "";
    for (unsigned i = 0; i <= WD_METRICS_BUCKETS; i++)
        wd_buf_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", f, l, sep,
                      i < WD_METRICS_BUCKETS ? bucket_le[i] : "+Inf",
                      (unsigned long long)s.cumulative[i]);
    wd_buf_printf(out, "%s_sum%s%s%s %.9f\n", f, l[0] ? "{" : "", l, l[0] ? "}" : "",
                  (double)s.sum_ns / 1e9);
    wd_buf_printf(out, "%s_count%s%s%s %llu\n", f, l[0] ? "{" : "", l, l[0] ? "}" : "",
                  (unsigned long long)s.count);
}

void wd_metrics_render(struct wd_buf *out, const struct wd_metrics_sample *extra, size_t n)
{
    const char *prev = "";
    for (int m = 0; m < WD_M__COUNT; m++) {
        if (strcmp(families[m], prev) != 0)
            header(out, families[m], "counter", helps[m]);
        prev = families[m];
        const char *l = labelsets[m];
        wd_buf_printf(out, "%s%s%s%s %llu\n", families[m], l[0] ? "{" : "", l, l[0] ? "}" : "",
                      (unsigned long long)wd_metrics_get(m));
    }
    prev = "";
    for (int h = 0; h < WD_H__COUNT; h++) {
        if (strcmp(hist_families[h], prev) != 0)
            header(out, hist_families[h], "histogram", hist_help(hist_families[h]));
        prev = hist_families[h];
        render_hist(out, h);
    }
    prev = "";
    for (size_t i = 0; i < n; i++) {
        const struct wd_metrics_sample *s = &extra[i];
        if (strcmp(s->family, prev) != 0)
            header(out, s->family, s->type == WD_METRICS_COUNTER ? "counter" : "gauge", s->help);
        prev = s->family;
        const char *l = s->labels;
        double v = s->value;
        /* integers exactly (up to 2^53), other values with 15 significant digits */
        if (v == (double)(long long)v && v < 9007199254740992.0 && v > -9007199254740992.0)
            wd_buf_printf(out, "%s%s%s%s %lld\n", s->family, l[0] ? "{" : "", l, l[0] ? "}" : "",
                          (long long)v);
        else
            wd_buf_printf(out, "%s%s%s%s %.15g\n", s->family, l[0] ? "{" : "", l, l[0] ? "}" : "",
                          v);
    }
}
