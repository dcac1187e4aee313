/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_erlterm: the Erlang term reader (src/policy/erlterm.c) alone, on arbitrary text.
 *
 * Input: the text of a file of terms (acl.conf's syntax). Every term is read to the end of
 * the input; then the terms that read cleanly are printed back here in a plain form
 * (quoted atoms, strings with \\ and the quote escaped, decimal integers, '.' and a new line
 * after each term) and that text is read again.
 * Invariants besides no crash, no leak and no UB:
 *   - the reader ends (WD_ENOENT) within one read per input byte plus one;
 *   - WD_ESYNTAX always comes with at least one more error, WD_OK with none;
 *   - a term is within the limits: nesting at most WD_ERL_MAX_DEPTH, at most
 *     WD_ERL_MAX_NODES elements; atoms and strings are valid UTF-8 without NUL, len ==
 *     strlen; children counts match the lists; positions are within the input's lines;
 *   - round trip: the printed text reads without any error into the same terms, in the
 *     same order (kinds, texts, integers, shapes).
 */
#include <stdbool.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/utf8.h"
#include "core/wd.h"
#include "fuzz.h"
#include "policy/diag.h"
#include "policy/erlterm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    wd_log_set_level(WD_LOG_ERROR);
    return 0;
}

static size_t check_term(const struct wd_erl_term *t, int depth, unsigned lines)
{
    FUZZ_CHECK(depth <= WD_ERL_MAX_DEPTH, "depth %d", depth);
    FUZZ_CHECK(t->line >= 1 && t->line <= lines && t->col >= 1, "position %u:%u of %u lines",
               t->line, t->col, lines);
    size_t nodes = 1;
    switch (t->k) {
    case WD_ERL_ATOM:
    case WD_ERL_STRING:
        FUZZ_CHECK(t->s && strlen(t->s) == t->len, "text length");
        FUZZ_CHECK(wd_utf8_valid_nonul(t->s, t->len), "text not UTF-8");
        break;
    case WD_ERL_INT:
        break;
    case WD_ERL_TUPLE:
    case WD_ERL_LIST: {
        size_t n = 0;
        for (const struct wd_erl_term *c = t->first; c; c = c->next, n++)
            nodes += check_term(c, depth + 1, lines);
        FUZZ_CHECK(n == t->n, "%zu children counted as %zu", n, t->n);
        break;
    }
    default:
        FUZZ_CHECK(0, "kind %d", (int)t->k);
    }
    return nodes;
}

static void put_quoted(struct wd_buf *b, const char *s, size_t n, char q)
{
    wd_buf_putc(b, q);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == q || s[i] == '\\')
            wd_buf_putc(b, '\\');
        wd_buf_putc(b, s[i]);
    }
    wd_buf_putc(b, q);
}

static void print_term(struct wd_buf *b, const struct wd_erl_term *t)
{
    switch (t->k) {
    case WD_ERL_ATOM:
        put_quoted(b, t->s, t->len, '\'');
        break;
    case WD_ERL_STRING:
        put_quoted(b, t->s, t->len, '"');
        break;
    case WD_ERL_INT:
        wd_buf_printf(b, "%ld", t->num);
        break;
    case WD_ERL_TUPLE:
    case WD_ERL_LIST:
        wd_buf_putc(b, t->k == WD_ERL_TUPLE ? '{' : '[');
        for (const struct wd_erl_term *c = t->first; c; c = c->next) {
            print_term(b, c);
            if (c->next)
                wd_buf_putc(b, ',');
        }
        wd_buf_putc(b, t->k == WD_ERL_TUPLE ? '}' : ']');
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    const char *src = (const char *)data;
    unsigned lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += src[i] == '\n';

    struct wd_diags d;
    wd_diags_init(&d, "fuzz.conf", src, size);
    struct wd_erl_reader *r = wd_erl_reader_new(src, size, &d);
    struct wd_buf printed = {0};
    size_t good = 0, reads = 0;
    for (;;) {
        const struct wd_erl_term *t = NULL;
        size_t errs = d.nerrors;
        int rc = wd_erl_read(r, &t);
        FUZZ_CHECK(++reads <= size + 1, "%zu reads of %zu bytes", reads, size);
        if (rc == WD_ENOENT) {
            FUZZ_CHECK(t == NULL && d.nerrors == errs, "end with a term or an error");
            break;
        }
        if (rc == WD_ESYNTAX) {
            FUZZ_CHECK(t == NULL, "a term with WD_ESYNTAX");
            FUZZ_CHECK(d.nerrors > errs || d.n >= WD_DIAG_MAX, "WD_ESYNTAX without an error");
            continue;
        }
        FUZZ_CHECK(rc == WD_OK && t != NULL, "rc %d", rc);
        FUZZ_CHECK(d.nerrors == errs, "a term read with errors");
        size_t nodes = check_term(t, 0, lines);
        FUZZ_CHECK(nodes <= WD_ERL_MAX_NODES, "%zu elements", nodes);
        print_term(&printed, t);
        wd_buf_puts(&printed, ".\n");
        good++;
    }
    wd_erl_reader_free(r);
    wd_diags_cleanup(&d);

    /* the round trip: read what was printed, print that again: the same text */
    struct wd_diags d2;
    const char *p = printed.s ? printed.s : "";
    wd_diags_init(&d2, "printed.conf", p, printed.len);
    r = wd_erl_reader_new(p, printed.len, &d2);
    struct wd_buf again = {0};
    size_t good2 = 0;
    const struct wd_erl_term *t = NULL;
    int rc;
    while ((rc = wd_erl_read(r, &t)) != WD_ENOENT) {
        FUZZ_CHECK(rc == WD_OK, "printed term %zu does not read back (rc %d)", good2, rc);
        print_term(&again, t);
        wd_buf_puts(&again, ".\n");
        good2++;
    }
    FUZZ_CHECK(d2.nerrors == 0, "printed text has %zu errors", d2.nerrors);
    FUZZ_CHECK(good2 == good, "%zu terms read back of %zu", good2, good);
    FUZZ_CHECK(again.len == printed.len &&
                   (!again.len || memcmp(again.s, printed.s, again.len) == 0),
               "printed terms read back differently");
    wd_erl_reader_free(r);
    wd_diags_cleanup(&d2);
    wd_buf_free(&again);
    wd_buf_free(&printed);
    return 0;
}
