/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/core/json.c: strings from devices become valid, single-line JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/json.h"

static char *str(const char *s, size_t n, size_t max, bool *cut)
{
    struct wd_buf b = {0};
    bool c = wd_json_str(&b, s, n, max);
    if (cut)
        *cut = c;
    return b.s;
}

static void quote_and_backslash_are_escaped(void **state)
{
    char *o = str("a\"b\\c", 5, 0, NULL);
    assert_string_equal(o, "\"a\\\"b\\\\c\"");
    free(o);
}

static void every_control_character_is_escaped_never_raw(void **state)
{
    char in[33];
    for (int i = 0; i < 32; i++)
        in[i] = (char)(i + 1 == 32 ? 0x7f : i + 1);
    char *o = str(in, 32, 0, NULL);
    for (const char *p = o; *p; p++)
        assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
    assert_non_null(strstr(o, "\\n"));
    assert_non_null(strstr(o, "\\r"));
    assert_non_null(strstr(o, "\\t"));
    assert_non_null(strstr(o, "\\u0001"));
    assert_non_null(strstr(o, "\\u001f"));
    assert_non_null(strstr(o, "\\u007f"));
    free(o);
}

static void nul_inside_the_length_is_escaped(void **state)
{
    char *o = str("a\0b", 3, 0, NULL);
    assert_string_equal(o, "\"a\\u0000b\"");
    free(o);
}

static void valid_utf8_passes_and_line_separators_are_escaped(void **state)
{
    const char *in = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8\xe2\x80\xa9";
    char *o = str(in, strlen(in), 0, NULL);
    assert_string_equal(o, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\u2028\\u2029\"");
    free(o);
}

static void invalid_utf8_becomes_replacement_characters(void **state)
{
    /* a lone continuation byte, an overlong '/', a surrogate, a truncated sequence */
    const char *in = "\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82";
    char *o = str(in, strlen(in), 0, NULL);
    assert_string_equal(o, "\"\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\"");
    free(o);
}

static void max_cuts_at_a_character_boundary_and_says_so(void **state)
{
    bool cut = false;
    /* 'a' then a 2-byte character: max 2 cannot take it whole */
    char *o = str("a\xc3\xa9z", 4, 2, &cut);
    assert_true(cut);
    assert_string_equal(o, "\"a\"");
    free(o);
    o = str("abc", 3, 3, &cut);
    assert_false(cut);
    assert_string_equal(o, "\"abc\"");
    free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quote_and_backslash_are_escaped),
        cmocka_unit_test(every_control_character_is_escaped_never_raw),
        cmocka_unit_test(nul_inside_the_length_is_escaped),
        cmocka_unit_test(valid_utf8_passes_and_line_separators_are_escaped),
        cmocka_unit_test(invalid_utf8_becomes_replacement_characters),
        cmocka_unit_test(max_cuts_at_a_character_boundary_and_says_so),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
