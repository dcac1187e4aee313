/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/core/metrics.c: histogram buckets, the text exposition. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/metrics.h"

static void observation_lands_in_the_first_bucket_at_or_above_it(void **state)
{
    struct wd_metrics_hist_snapshot a, b;
    wd_metrics_hist_get(WD_H_CALL_OTHER, &a);
    wd_metrics_observe(WD_H_CALL_OTHER, 1);                       /* <= 50 us */
    wd_metrics_observe(WD_H_CALL_OTHER, wd_metrics_bucket_ns[0]); /* le is inclusive */
    wd_metrics_observe(WD_H_CALL_OTHER, wd_metrics_bucket_ns[0] + 1);
    wd_metrics_observe(WD_H_CALL_OTHER, 5000000000ull); /* 5 s: +Inf only */
    wd_metrics_hist_get(WD_H_CALL_OTHER, &b);
    assert_int_equal(b.cumulative[0] - a.cumulative[0], 2);
    assert_int_equal(b.cumulative[1] - a.cumulative[1], 3);
    assert_int_equal(b.cumulative[WD_METRICS_BUCKETS - 1] - a.cumulative[WD_METRICS_BUCKETS - 1],
                     3);
    assert_int_equal(b.cumulative[WD_METRICS_BUCKETS] - a.cumulative[WD_METRICS_BUCKETS], 4);
    assert_int_equal(b.count - a.count, 4);
    assert_int_equal(b.sum_ns - a.sum_ns, 1 + 2 * wd_metrics_bucket_ns[0] + 1 + 5000000000ull);
}

static void bucket_bounds_increase(void **state)
{
    for (int i = 1; i < WD_METRICS_BUCKETS; i++)
        assert_true(wd_metrics_bucket_ns[i] > wd_metrics_bucket_ns[i - 1]);
}

#define THREADS 4
#define PER_THREAD 200000

static void *observer(void *arg)
{
    uintptr_t k = (uintptr_t)arg;
    for (unsigned i = 0; i < PER_THREAD; i++)
        wd_metrics_observe(WD_H_CALL_PUBLISH, (uint64_t)((i * 7919u + k) % 2000000u) * 1000u);
    return NULL;
}

static void snapshots_stay_cumulative_while_threads_observe(void **state)
{
    struct wd_metrics_hist_snapshot before, s, prev;
    wd_metrics_hist_get(WD_H_CALL_PUBLISH, &before);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, observer, (void *)i), 0);
    memset(&prev, 0, sizeof prev);
    for (int n = 0; n < 2000; n++) {
        wd_metrics_hist_get(WD_H_CALL_PUBLISH, &s);
        for (int i = 1; i <= WD_METRICS_BUCKETS; i++)
            assert_true(s.cumulative[i] >= s.cumulative[i - 1]);
        assert_int_equal(s.count, s.cumulative[WD_METRICS_BUCKETS]);
        assert_true(s.count >= prev.count); /* counters never go back */
        prev = s;
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    wd_metrics_hist_get(WD_H_CALL_PUBLISH, &s);
    assert_int_equal(s.count - before.count, THREADS * PER_THREAD); /* none lost */
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void exposition_has_one_header_per_family_and_consistent_histograms(void **state)
{
    wd_metrics_inc(WD_M_AUTHZ_DENY);
    wd_metrics_observe(WD_H_CALL_AUTHZ, 300000); /* 0.3 ms */
    struct wd_metrics_sample extra[2] = {
        {.family = "warden_x",
         .type = WD_METRICS_GAUGE,
         .help = "h",
         .labels = "a=\"1\"",
         .value = 3},
        {.family = "warden_x",
         .type = WD_METRICS_GAUGE,
         .help = "h",
         .labels = "a=\"2\"",
         .value = 0.5},
    };
    struct wd_buf b = {0};
    wd_metrics_render(&b, extra, 2);
    const char *t = b.s;
    assert_int_equal(count_of(t, "# TYPE warden_decisions_total counter\n"), 1);
    assert_int_equal(count_of(t, "# TYPE warden_call_duration_seconds histogram\n"), 1);
    assert_int_equal(count_of(t, "# TYPE warden_jwt_refused_total counter\n"), 1);
    assert_int_equal(count_of(t, "# TYPE warden_x gauge\n"), 1);
    assert_non_null(strstr(t, "warden_x{a=\"1\"} 3\n"));
    assert_non_null(strstr(t, "warden_x{a=\"2\"} 0.5\n"));
    assert_non_null(
        strstr(t, "warden_decisions_total{hook=\"client.authorize\",decision=\"deny\"} "));
    /* the 0.3 ms observation: not in le=0.00025, in le=0.0005 and everything above */
    unsigned long long v025 = 0, v05 = 0, inf = 0, count = 0;
    const char *p = strstr(t, "warden_call_duration_seconds_bucket{hook=\"client.authorize\","
                              "le=\"0.00025\"} ");
    assert_non_null(p);
    assert_int_equal(sscanf(strchr(p, '}') + 2, "%llu", &v025), 1);
    p = strstr(t, "warden_call_duration_seconds_bucket{hook=\"client.authorize\",le=\"0.0005\"} ");
    assert_non_null(p);
    assert_int_equal(sscanf(strchr(p, '}') + 2, "%llu", &v05), 1);
    assert_true(v05 >= v025 + 1);
    p = strstr(t, "warden_call_duration_seconds_bucket{hook=\"client.authorize\",le=\"+Inf\"} ");
    assert_non_null(p);
    assert_int_equal(sscanf(strchr(p, '}') + 2, "%llu", &inf), 1);
    p = strstr(t, "warden_call_duration_seconds_count{hook=\"client.authorize\"} ");
    assert_non_null(p);
    assert_int_equal(sscanf(strchr(p, '}') + 2, "%llu", &count), 1);
    assert_int_equal(inf, count);
    /* every line is a comment or `name{labels} value` with no raw control byte */
    for (const char *q = t; *q; q++)
        assert_true(*q == '\n' || (unsigned char)*q >= 0x20);
    wd_buf_free(&b);
}

static void label_values_are_escaped(void **state)
{
    char out[32];
    assert_string_equal(wd_metrics_label_escape(out, sizeof out, "a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    char small[4];
    assert_string_equal(wd_metrics_label_escape(small, sizeof small, "\"\"\""), "\\\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(observation_lands_in_the_first_bucket_at_or_above_it),
        cmocka_unit_test(bucket_bounds_increase),
        cmocka_unit_test(snapshots_stay_cumulative_while_threads_observe),
        cmocka_unit_test(exposition_has_one_header_per_family_and_consistent_histograms),
        cmocka_unit_test(label_values_are_escaped),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
