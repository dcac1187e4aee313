/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/server/conntimer.c: keepalive pings and dead peers, idle and age
 * recycling in two steps with a grace, and the ping-strike counter, on a clock passed in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/conntimer.h"

static const struct wd_conntimer_cfg CFG = {
    .keepalive_time_ms = 60000,
    .keepalive_timeout_ms = 20000,
    .idle_ms = 0,
    .age_ms = 0,
    .goaway_delay_ms = 100,
    .grace_ms = 30000,
};

static void an_idle_peer_is_pinged_after_keepalive_time_and_dead_after_the_timeout(void **state)
{
    struct wd_conntimer t;
    wd_conntimer_init(&t, &CFG, 1000, 0);
    assert_int_equal(wd_conntimer_next(&t), 61000);
    assert_int_equal(wd_conntimer_due(&t, 60999), WD_CONNTIMER_NONE);
    assert_int_equal(wd_conntimer_due(&t, 61000), WD_CONNTIMER_PING);
    assert_int_equal(wd_conntimer_due(&t, 61000), WD_CONNTIMER_NONE); /* one PING */
    assert_int_equal(wd_conntimer_next(&t), 81000);
    assert_int_equal(wd_conntimer_due(&t, 80999), WD_CONNTIMER_NONE);
    assert_int_equal(wd_conntimer_due(&t, 81000), WD_CONNTIMER_DEAD);
}

static void any_byte_after_the_ping_answers_it_and_restarts_the_interval(void **state)
{
    struct wd_conntimer t;
    wd_conntimer_init(&t, &CFG, 0, 0); /* a clock reading of 0 is fine */
    assert_int_equal(wd_conntimer_due(&t, 60000), WD_CONNTIMER_PING);
    wd_conntimer_received(&t, 60000); /* the ACK within the same millisecond */
    assert_int_equal(wd_conntimer_next(&t), 120000);
    assert_int_equal(wd_conntimer_due(&t, 80000), WD_CONNTIMER_NONE);
    assert_int_equal(wd_conntimer_due(&t, 120000), WD_CONNTIMER_PING);
    wd_conntimer_received(&t, 130000);
    assert_int_equal(wd_conntimer_due(&t, 140000), WD_CONNTIMER_NONE);
    assert_int_equal(wd_conntimer_next(&t), 190000);
}

static void a_busy_connection_is_never_pinged(void **state)
{
    struct wd_conntimer t;
    wd_conntimer_init(&t, &CFG, 1000, 0);
    for (uint64_t now = 1000; now < 1000000; now += 30000) {
        wd_conntimer_received(&t, now);
        assert_int_equal(wd_conntimer_due(&t, now), WD_CONNTIMER_NONE);
        assert_true(wd_conntimer_next(&t) > now);
    }
}

static void idle_limit_counts_from_the_last_stream_and_recycles_in_two_steps(void **state)
{
    struct wd_conntimer_cfg cfg = CFG;
    cfg.idle_ms = 5000;
    struct wd_conntimer t;
    wd_conntimer_init(&t, &cfg, 1000, 0);
    assert_int_equal(wd_conntimer_next(&t), 6000); /* idle from the start */
    wd_conntimer_received(&t, 3000);
    wd_conntimer_streams(&t, 1, 3000); /* a call: not idle */
    assert_int_equal(wd_conntimer_next(&t), 63000);
    assert_int_equal(wd_conntimer_due(&t, 9000), WD_CONNTIMER_NONE);
    wd_conntimer_streams(&t, 0, 10000);
    wd_conntimer_streams(&t, 0, 12000); /* still idle since 10000 */
    assert_int_equal(wd_conntimer_next(&t), 15000);
    assert_int_equal(wd_conntimer_due(&t, 14999), WD_CONNTIMER_NONE);
    assert_int_equal(wd_conntimer_due(&t, 15000), WD_CONNTIMER_IDLE);
    assert_int_equal(wd_conntimer_next(&t), 15100);
    assert_int_equal(wd_conntimer_due(&t, 15050), WD_CONNTIMER_NONE);
    assert_int_equal(wd_conntimer_due(&t, 15100), WD_CONNTIMER_GOAWAY);
    assert_int_equal(wd_conntimer_next(&t), 45100);
    assert_int_equal(wd_conntimer_due(&t, 45100), WD_CONNTIMER_EXPIRED);
    assert_int_equal(wd_conntimer_due(&t, 45100), WD_CONNTIMER_NONE); /* once */
}

static void idle_zero_never_recycles(void **state)
{
    struct wd_conntimer t;
    wd_conntimer_init(&t, &CFG, 1000, 0);
    for (uint64_t now = 1000; now < 10000000; now += 50000) {
        wd_conntimer_received(&t, now);
        assert_int_equal(wd_conntimer_due(&t, now), WD_CONNTIMER_NONE);
    }
}

static void age_is_jittered_by_at_most_ten_percent_and_ignores_traffic(void **state)
{
    struct wd_conntimer_cfg cfg = CFG;
    cfg.age_ms = 100000;
    cfg.grace_ms = 0;
    struct wd_conntimer t;
    wd_conntimer_init(&t, &cfg, 1000, -100);
    assert_int_equal(t.age_at, 91000);
    wd_conntimer_init(&t, &cfg, 1000, 500); /* clamped */
    assert_int_equal(t.age_at, 111000);
    wd_conntimer_init(&t, &cfg, 1000, 0);
    wd_conntimer_streams(&t, 3, 1000);
    for (uint64_t now = 1000; now < 101000; now += 10000) {
        wd_conntimer_received(&t, now);
        assert_int_equal(wd_conntimer_due(&t, now), WD_CONNTIMER_NONE);
    }
    assert_int_equal(wd_conntimer_next(&t), 101000);
    assert_int_equal(wd_conntimer_due(&t, 101000), WD_CONNTIMER_AGE);
    assert_int_equal(wd_conntimer_due(&t, 101100), WD_CONNTIMER_GOAWAY);
    /* grace 0: closed at the final GOAWAY's next look */
    assert_int_equal(wd_conntimer_due(&t, 101100), WD_CONNTIMER_EXPIRED);
}

static void keepalive_goes_on_during_the_grace(void **state)
{
    struct wd_conntimer_cfg cfg = CFG;
    cfg.age_ms = 10000;
    cfg.grace_ms = 120000;
    struct wd_conntimer t;
    wd_conntimer_init(&t, &cfg, 0, 0);
    wd_conntimer_streams(&t, 1, 0);
    wd_conntimer_received(&t, 9000);
    assert_int_equal(wd_conntimer_due(&t, 10000), WD_CONNTIMER_AGE);
    assert_int_equal(wd_conntimer_due(&t, 10100), WD_CONNTIMER_GOAWAY);
    assert_int_equal(wd_conntimer_next(&t), 69000);
    assert_int_equal(wd_conntimer_due(&t, 69000), WD_CONNTIMER_PING);
    assert_int_equal(wd_conntimer_due(&t, 89000), WD_CONNTIMER_DEAD);
}

static void pings_closer_than_the_interval_strike_and_the_third_strike_is_out(void **state)
{
    struct wd_pingstrikes s;
    wd_pingstrikes_init(&s, 10000, WD_PINGSTRIKES_MAX);
    assert_false(wd_pingstrikes_ping(&s, 1000));
    assert_false(wd_pingstrikes_ping(&s, 2000));  /* strike 1 */
    assert_false(wd_pingstrikes_ping(&s, 3000));  /* strike 2 */
    assert_true(wd_pingstrikes_ping(&s, 4000));   /* strike 3 > 2 */
    assert_true(wd_pingstrikes_ping(&s, 100000)); /* and it stays out */
}

static void emqx_pinging_every_60s_never_strikes(void **state)
{
    struct wd_pingstrikes s;
    wd_pingstrikes_init(&s, 10000, WD_PINGSTRIKES_MAX);
    for (uint64_t now = 1000; now < 10000000; now += 60000)
        assert_false(wd_pingstrikes_ping(&s, now));
    assert_int_equal(s.strikes, 0);
    /* the longest allowed interval (60 s) still tolerates a 60 s pinger */
    wd_pingstrikes_init(&s, 60000, WD_PINGSTRIKES_MAX);
    for (uint64_t now = 1000; now < 10000000; now += 60000)
        assert_false(wd_pingstrikes_ping(&s, now));
}

static void requests_forgive_pings(void **state)
{
    struct wd_pingstrikes s;
    wd_pingstrikes_init(&s, 10000, WD_PINGSTRIKES_MAX);
    for (uint64_t now = 1000; now < 1000 + 100 * 100; now += 100) {
        assert_false(wd_pingstrikes_ping(&s, now)); /* e.g. BDP pings next to calls */
        assert_false(wd_pingstrikes_ping(&s, now + 1));
        wd_pingstrikes_request(&s);
    }
}

static void interval_zero_allows_any_ping_rate(void **state)
{
    struct wd_pingstrikes s;
    wd_pingstrikes_init(&s, 0, WD_PINGSTRIKES_MAX);
    for (int i = 0; i < 10000; i++)
        assert_false(wd_pingstrikes_ping(&s, 5000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_idle_peer_is_pinged_after_keepalive_time_and_dead_after_the_timeout),
        cmocka_unit_test(any_byte_after_the_ping_answers_it_and_restarts_the_interval),
        cmocka_unit_test(a_busy_connection_is_never_pinged),
        cmocka_unit_test(idle_limit_counts_from_the_last_stream_and_recycles_in_two_steps),
        cmocka_unit_test(idle_zero_never_recycles),
        cmocka_unit_test(age_is_jittered_by_at_most_ten_percent_and_ignores_traffic),
        cmocka_unit_test(keepalive_goes_on_during_the_grace),
        cmocka_unit_test(pings_closer_than_the_interval_strike_and_the_third_strike_is_out),
        cmocka_unit_test(emqx_pinging_every_60s_never_strikes),
        cmocka_unit_test(requests_forgive_pings),
        cmocka_unit_test(interval_zero_allows_any_ping_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
