/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/core/log.c: one event is one line, untrusted bytes are escaped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"

static void quote_escapes_quotes_backslashes_and_control_bytes(void **state)
{
    char out[64];
    wd_log_quote(out, sizeof out, "a\"b\\c\n\x01\xff", 8);
    assert_string_equal(out, "\"a\\\"b\\\\c\\x0a\\x01\\xff\"");
}

static void quote_truncates_long_input_and_stays_terminated(void **state)
{
    char out[16];
    char in[100];
    memset(in, 'x', sizeof in);
    wd_log_quote(out, sizeof out, in, sizeof in);
    assert_true(strlen(out) < sizeof out);
    assert_non_null(strstr(out, "...\""));
}

static void quote_handles_embedded_nul(void **state)
{
    char out[32];
    wd_log_quote(out, sizeof out, "a\0b", 3);
    assert_string_equal(out, "\"a\\x00b\"");
}

static void formatted_line_never_contains_a_raw_newline(void **state)
{
    char buf[512];
    size_t n = wd_log__format(buf, sizeof buf, WD_LOG_WARN, "test", "evil\nINJECTED line\r");
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', n - 1));
    assert_null(memchr(buf, '\r', n));
    assert_non_null(strstr(buf, "WARN  test: evil\\x0aINJECTED line\\x0d"));
}

static void level_filter_and_parse(void **state)
{
    enum wd_log_level l;
    assert_int_equal(wd_log_level_parse("debug", &l), 0);
    assert_int_equal(l, WD_LOG_DEBUG);
    assert_int_not_equal(wd_log_level_parse("verbose", &l), 0);
    wd_log_set_level(WD_LOG_WARN);
    assert_true(wd_log_enabled(WD_LOG_ERROR));
    assert_false(wd_log_enabled(WD_LOG_INFO));
}

static void log_writes_one_line_per_event_to_the_configured_fd(void **state)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    wd_log_set_fd(p[1]);
    wd_log_set_level(WD_LOG_INFO);
    wd_log_info("mod", "hello %s", "a\nb");
    wd_log_debug("mod", "filtered");
    wd_log_set_fd(2);
    close(p[1]);
    char buf[512] = {0};
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "INFO  mod: hello a\\x0ab\n"));
    assert_null(strstr(buf, "filtered"));
}

static void ratelimit_logs_the_first_then_once_per_interval_with_the_count(void **state)
{
    struct wd_log_ratelimit r = {0};
    unsigned long skipped = 99;
    assert_true(wd_log_ratelimit_allow(&r, 5000, 60000, &skipped));
    assert_int_equal(skipped, 0);
    /* a failure every 100 ms for a minute: 599 more, none logged */
    for (long long t = 5100; t < 65000; t += 100) {
        assert_false(wd_log_ratelimit_allow(&r, t, 60000, &skipped));
        assert_int_equal(skipped, 0);
    }
    assert_true(wd_log_ratelimit_allow(&r, 65000, 60000, &skipped));
    assert_int_equal(skipped, 599);
    assert_false(wd_log_ratelimit_allow(&r, 65001, 60000, &skipped));
    /* a clock at 0 is a first occurrence like any other */
    struct wd_log_ratelimit z = {0};
    assert_true(wd_log_ratelimit_allow(&z, 0, 1000, &skipped));
    assert_false(wd_log_ratelimit_allow(&z, 0, 1000, &skipped));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quote_escapes_quotes_backslashes_and_control_bytes),
        cmocka_unit_test(quote_truncates_long_input_and_stays_terminated),
        cmocka_unit_test(quote_handles_embedded_nul),
        cmocka_unit_test(formatted_line_never_contains_a_raw_newline),
        cmocka_unit_test(level_filter_and_parse),
        cmocka_unit_test(log_writes_one_line_per_event_to_the_configured_fd),
        cmocka_unit_test(ratelimit_logs_the_first_then_once_per_interval_with_the_count),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
