/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/policy/erlterm.c: the Erlang term reader, alone (acl.conf semantics
 * are import.c's, tested in test_import.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/wd.h"
#include "policy/diag.h"
#include "policy/erlterm.h"

struct rd {
    struct wd_diags d;
    struct wd_erl_reader *r;
};

static void open_text(struct rd *t, const char *text)
{
    wd_diags_init(&t->d, "t.conf", text, strlen(text));
    t->r = wd_erl_reader_new(text, strlen(text), &t->d);
}

static void close_text(struct rd *t)
{
    wd_erl_reader_free(t->r);
    wd_diags_cleanup(&t->d);
}

static void terms_of_every_kind_are_read_with_their_positions(void **state)
{
    struct rd t;
    open_text(&t, "% a comment\n{allow, 'quoted atom', [\"s\", 16#ff, -1_000, $a], {}}.\n[].\n");
    const struct wd_erl_term *e = NULL;
    assert_int_equal(wd_erl_read(t.r, &e), WD_OK);
    assert_int_equal(e->k, WD_ERL_TUPLE);
    assert_int_equal(e->n, 4);
    assert_int_equal(e->line, 2);
    assert_int_equal(e->col, 1);
    assert_true(wd_erl_is_atom(wd_erl_nth(e, 0), "allow"));
    assert_true(wd_erl_is_atom(wd_erl_nth(e, 1), "quoted atom"));
    const struct wd_erl_term *l = wd_erl_nth(e, 2);
    assert_int_equal(l->k, WD_ERL_LIST);
    assert_int_equal(l->n, 4);
    assert_string_equal(wd_erl_nth(l, 0)->s, "s");
    assert_int_equal(wd_erl_nth(l, 1)->num, 255);
    assert_int_equal(wd_erl_nth(l, 2)->num, -1000);
    assert_int_equal(wd_erl_nth(l, 3)->num, 'a');
    assert_int_equal(wd_erl_nth(e, 3)->k, WD_ERL_TUPLE);
    assert_int_equal(wd_erl_nth(e, 3)->n, 0);
    assert_null(wd_erl_nth(e, 4));
    assert_int_equal(wd_erl_read(t.r, &e), WD_OK);
    assert_int_equal(e->k, WD_ERL_LIST);
    assert_int_equal(e->line, 3);
    assert_int_equal(wd_erl_read(t.r, &e), WD_ENOENT);
    assert_null(e);
    assert_int_equal(t.d.nerrors, 0);
    close_text(&t);
}

static void strings_decode_escapes_and_adjacent_strings_join(void **state)
{
    struct rd t;
    open_text(&t, "\"a\\n\\x41\\x{e9}\\101\\^A\" \"b\".\n");
    const struct wd_erl_term *e = NULL;
    assert_int_equal(wd_erl_read(t.r, &e), WD_OK);
    assert_int_equal(e->k, WD_ERL_STRING);
    assert_string_equal(e->s, "a\nA\xc3\xa9"
                              "A\x01"
                              "b");
    assert_int_equal(e->len, strlen(e->s));
    close_text(&t);
}

static void an_error_skips_to_the_end_of_its_term_and_reading_goes_on(void **state)
{
    struct rd t;
    open_text(&t, "{allow, X, y}.\n{deny, all}.\n{a b}.\n{1.5}.\nok.\n");
    const struct wd_erl_term *e = NULL;
    assert_int_equal(wd_erl_read(t.r, &e), WD_ESYNTAX);
    assert_int_equal(t.d.nerrors, 1); /* the variable; the rest of the term is skipped */
    assert_int_equal(wd_erl_read(t.r, &e), WD_OK);
    assert_true(wd_erl_is_atom(wd_erl_nth(e, 0), "deny"));
    assert_int_equal(wd_erl_read(t.r, &e), WD_ESYNTAX); /* expected ',' or '}' */
    assert_int_equal(wd_erl_read(t.r, &e), WD_ESYNTAX); /* floats */
    assert_int_equal(wd_erl_read(t.r, &e), WD_OK);
    assert_true(wd_erl_is_atom(e, "ok"));
    assert_int_equal(wd_erl_read(t.r, &e), WD_ENOENT);
    assert_int_equal(t.d.nerrors, 3);
    close_text(&t);
}

static void a_missing_final_dot_is_reported(void **state)
{
    struct rd t;
    open_text(&t, "{allow, all}");
    const struct wd_erl_term *e = NULL;
    assert_int_equal(wd_erl_read(t.r, &e), WD_ESYNTAX);
    assert_int_equal(t.d.nerrors, 1);
    assert_int_equal(wd_erl_read(t.r, &e), WD_ENOENT);
    close_text(&t);
}

static void nesting_and_size_are_bounded(void **state)
{
    struct rd t;
    struct wd_buf b = {0};
    for (int i = 0; i < WD_ERL_MAX_DEPTH + 1; i++)
        wd_buf_putc(&b, '[');
    for (int i = 0; i < WD_ERL_MAX_DEPTH + 1; i++)
        wd_buf_putc(&b, ']');
    wd_buf_puts(&b, ".\n[");
    for (int i = 0; i < WD_ERL_MAX_NODES; i++)
        wd_buf_puts(&b, i ? ",1" : "1");
    wd_buf_puts(&b, "].\nok.\n");
    open_text(&t, b.s);
    const struct wd_erl_term *e = NULL;
    assert_int_equal(wd_erl_read(t.r, &e), WD_ESYNTAX);
    assert_int_equal(wd_erl_read(t.r, &e), WD_ESYNTAX);
    assert_int_equal(t.d.nerrors, 2);
    assert_int_equal(wd_erl_read(t.r, &e), WD_OK);
    assert_true(wd_erl_is_atom(e, "ok"));
    close_text(&t);
    wd_buf_free(&b);

    /* exactly the depth limit is fine */
    for (int i = 0; i < WD_ERL_MAX_DEPTH; i++)
        wd_buf_putc(&b, '[');
    for (int i = 0; i < WD_ERL_MAX_DEPTH; i++)
        wd_buf_putc(&b, ']');
    wd_buf_puts(&b, ".\n");
    open_text(&t, b.s);
    assert_int_equal(wd_erl_read(t.r, &e), WD_OK);
    close_text(&t);
    wd_buf_free(&b);
}

static void descriptions_name_the_term(void **state)
{
    struct rd t;
    char buf[96];
    open_text(&t, "{x, \"a\\tb\", 7, [], {1}}.\n");
    const struct wd_erl_term *e = NULL;
    assert_int_equal(wd_erl_read(t.r, &e), WD_OK);
    wd_erl_describe(wd_erl_nth(e, 0), buf, sizeof buf);
    assert_string_equal(buf, "'x'");
    wd_erl_describe(wd_erl_nth(e, 1), buf, sizeof buf);
    assert_string_equal(buf, "the string \"a?b\"");
    wd_erl_describe(wd_erl_nth(e, 2), buf, sizeof buf);
    assert_string_equal(buf, "the integer 7");
    wd_erl_describe(wd_erl_nth(e, 3), buf, sizeof buf);
    assert_string_equal(buf, "a list");
    wd_erl_describe(wd_erl_nth(e, 4), buf, sizeof buf);
    assert_string_equal(buf, "a tuple of 1 element");
    close_text(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(terms_of_every_kind_are_read_with_their_positions),
        cmocka_unit_test(strings_decode_escapes_and_adjacent_strings_join),
        cmocka_unit_test(an_error_skips_to_the_end_of_its_term_and_reading_goes_on),
        cmocka_unit_test(a_missing_final_dot_is_reported),
        cmocka_unit_test(nesting_and_size_are_bounded),
        cmocka_unit_test(descriptions_name_the_term),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
