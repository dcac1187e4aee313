/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/server/h2.c's pure helpers: strict grpc-timeout parsing and the
 * percent-encoding of grpc-message. (The framing is exercised end to end by
 * tests/integration/sec_transport.py with independent clients.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/wd.h"
#include "server/h2.h"

static int parse(const char *s, uint64_t *ms)
{
    return wd_h2_parse_timeout(s, strlen(s), ms);
}

static void timeout_accepts_every_unit_and_rounds_up_to_milliseconds(void **state)
{
    uint64_t ms;
    assert_int_equal(parse("5S", &ms), WD_OK);
    assert_int_equal(ms, 5000);
    assert_int_equal(parse("1500m", &ms), WD_OK);
    assert_int_equal(ms, 1500);
    assert_int_equal(parse("2M", &ms), WD_OK);
    assert_int_equal(ms, 120000);
    assert_int_equal(parse("1H", &ms), WD_OK);
    assert_int_equal(ms, 3600000);
    assert_int_equal(parse("1u", &ms), WD_OK);
    assert_int_equal(ms, 1);
    assert_int_equal(parse("1000001n", &ms), WD_OK);
    assert_int_equal(ms, 2);
    assert_int_equal(parse("0m", &ms), WD_OK);
    assert_int_equal(ms, 0);
    assert_int_equal(parse("99999999H", &ms), WD_OK); /* 8 digits: the largest, no overflow */
    assert_true(ms == 99999999ull * 3600000ull);
}

static void timeout_refuses_signs_spaces_nine_digits_and_unknown_units(void **state)
{
    static const char *const bad[] = {"",     "S",    "5",          "+5S", "-5S",     " 5S",
                                      "5S ",  "5 S",  "123456789S", "5s",  "5ms",     "5x",
                                      "0x5S", "5.0S", "５S",        "5SS", "\x35\x00"};
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        uint64_t ms = 42;
        assert_int_not_equal(parse(bad[i], &ms), WD_OK);
        assert_true(ms == 0);
    }
    uint64_t ms;
    assert_int_not_equal(wd_h2_parse_timeout("5S\0", 3, &ms), WD_OK); /* NUL inside */
}

static void grpc_message_is_percent_encoded_outside_printable_ascii(void **state)
{
    char out[64];
    assert_string_equal(wd_h2_percent_encode(out, sizeof out, "ok: plain text"), "ok: plain text");
    assert_string_equal(wd_h2_percent_encode(out, sizeof out, "a\r\nb%c\x7f\xc3\xa9"),
                        "a%0D%0Ab%25c%7F%C3%A9");
    /* truncation never splits an escape and always terminates */
    char small[5];
    assert_string_equal(wd_h2_percent_encode(small, sizeof small, "ab\ncd"), "ab");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timeout_accepts_every_unit_and_rounds_up_to_milliseconds),
        cmocka_unit_test(timeout_refuses_signs_spaces_nine_digits_and_unknown_units),
        cmocka_unit_test(grpc_message_is_percent_encoded_outside_printable_ascii),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
