/* SPDX-License-Identifier: Apache-2.0 */
/*
 * diag.c: see diag.h.
 */
#include "policy/diag.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/wd.h"

void wd_diags_init(struct wd_diags *d, const char *file, const char *src, size_t srclen)
{
    memset(d, 0, sizeof *d);
    d->file = wd_strdup(file);
    d->src = src;
    d->srclen = srclen;
}

void wd_diags_cleanup(struct wd_diags *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].msg);
    free(d->v);
    free(d->file);
    free(d->red);
    memset(d, 0, sizeof *d);
}

void wd_diags_clear(struct wd_diags *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].msg);
    d->n = 0;
    d->nerrors = 0;
    d->nwarnings = 0;
    d->truncated = 0;
}

void wd_diags_redact(struct wd_diags *d, unsigned line, unsigned col, size_t len)
{
    if (d->nred == d->capred) {
        d->capred = d->capred ? d->capred * 2 : 8;
        d->red = wd_realloc(d->red, d->capred * sizeof *d->red);
    }
    d->red[d->nred++] = (struct wd_redaction){line, col, len};
}

static bool redacted(const struct wd_diags *d, unsigned line, size_t col)
{
    for (size_t i = 0; i < d->nred; i++) {
        const struct wd_redaction *r = &d->red[i];
        /* keep the quotes: "******" */
        if (r->line == line && col > r->col && col + 1 < r->col + r->len)
            return true;
    }
    return false;
}

void wd_diag_add(struct wd_diags *d, enum wd_diag_sev sev, unsigned line, unsigned col,
                 const char *fmt, ...)
{
    if (sev == WD_DIAG_ERROR)
        d->nerrors++;
    else
        d->nwarnings++;
    if (d->n >= WD_DIAG_MAX) {
        d->truncated = 1;
        return;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->v = wd_realloc(d->v, d->cap * sizeof *d->v);
    }
    d->v[d->n].sev = sev;
    d->v[d->n].line = line;
    d->v[d->n].col = col;
    d->v[d->n].msg = wd_strdup(buf);
    d->v[d->n].syntax = d->in_syntax;
    d->n++;
}

/* the text of 1-based line `line` */
static const char *line_text(const struct wd_diags *d, unsigned line, size_t *len)
{
    const char *p = d->src, *end = d->src + d->srclen;
    for (unsigned l = 1; l < line && p < end; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        p = nl + 1;
    }
    if (!p || p > end)
        return NULL;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (*len && p[*len - 1] == '\r')
        (*len)--;
    return p;
}

/* ---- masking lines that may hold a secret (diag.h) ---- */

static bool word_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool word_char(char c)
{
    return word_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

static bool never_secret(const char *w, size_t n)
{
    static const char *const kw[] = {"authn", "allow", "deny", "rules", "authz"};
    for (size_t i = 0; i < sizeof kw / sizeof *kw; i++)
        if (strlen(kw[i]) == n && memcmp(kw[i], w, n) == 0)
            return true;
    return false;
}

/* Walks the source line by line, remembering whether the statement goes on (indented
 * lines after a masked line are masked too). */
struct mask_walk {
    const char *p, *end;
    unsigned line; /* the line p starts */
    bool chain;
};

/* The 1-based column from which line `text` (n bytes) is masked, 0 for none; *chain: the
 * statement before it was masked (updated). */
static size_t mask_from(const char *text, size_t n, bool *chain)
{
    size_t i = 0;
    while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
        i++;
    if (i == n || text[i] == '#')
        return 0; /* blank or comment: the statement state carries over */
    bool indented = i > 0;
    if (indented && *chain)
        return i + 1; /* goes on with a masked statement */
    if (!word_start(text[i])) {
        if (indented)
            return 0; /* goes on with a rule's list */
        *chain = true;
        return i + 1;
    }
    size_t w = i;
    while (i < n && word_char(text[i]))
        i++;
    if (never_secret(text + w, i - w)) {
        *chain = false;
        return 0;
    }
    *chain = true;
    /* the user name: a whole string after the word, and more after it on the line (else
     * the "name" may be the secret of a statement that lacks one) */
    size_t j = i;
    while (j < n && (text[j] == ' ' || text[j] == '\t'))
        j++;
    if (j < n && text[j] == '"') {
        size_t k = j + 1;
        bool closed = false;
        while (k < n) {
            if (text[k] == '\\') {
                k += 2;
                continue;
            }
            if (text[k++] == '"') {
                closed = true;
                break;
            }
        }
        size_t m = k;
        while (closed && m < n && (text[m] == ' ' || text[m] == '\t' || text[m] == '\r'))
            m++;
        if (closed && m < n && text[m] != '#')
            return k + 1;
    }
    return i + 1;
}

/* The masked column of line `line` (0: none); lines must be asked for in ascending order. */
static size_t walk_to(struct mask_walk *w, unsigned line, const char **text, size_t *n)
{
    size_t from = 0;
    while (w->p && w->line <= line) {
        const char *nl = memchr(w->p, '\n', (size_t)(w->end - w->p));
        size_t len = nl ? (size_t)(nl - w->p) : (size_t)(w->end - w->p);
        const char *t = w->p;
        from = mask_from(t, len, &w->chain);
        if (w->line == line) {
            *text = t;
            *n = len;
            return from;
        }
        w->p = nl ? nl + 1 : NULL;
        w->line++;
    }
    return 0;
}

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Does msg contain a word (a run of 2 or more letters and digits, other than the keyword
 * superuser) of the masked part of the line? */
static bool shows_masked_word(const char *msg, const char *masked, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (!is_alnum(masked[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && is_alnum(masked[j]))
            j++;
        size_t len = j - i;
        bool keyword = len == 9 && memcmp(masked + i, "superuser", 9) == 0;
        if (len >= 2 && !keyword) {
            for (const char *m = msg; (m = strchr(m, masked[i])) != NULL; m++)
                if (strncmp(m, masked + i, len) == 0)
                    return true;
        }
        i = j;
    }
    return false;
}

/* The message of a diagnostic at a masked position: quoted text becomes "***" unless it
 * is shown unmasked on the line or is one of the grammar's own examples, and the value
 * of "number N" and "byte 0xHH" is hidden. If a word of the masked text still shows, a
 * generic message replaces it. */
static void put_scrubbed(struct wd_buf *b, const char *msg, const char *line, size_t n, size_t from)
{
    static const char *const safe[] = {"sha256:SALT:HEX", "superuser"};
    size_t vis = from - 1; /* bytes of the line shown as they are */
    struct wd_buf o = {0};
    wd_buf_put(&o, "", 0);
    for (const char *m = msg; *m;) {
        if (*m == '\'' || *m == '"') {
            const char *close = strchr(m + 1, *m);
            size_t q = close ? (size_t)(close - m - 1) : strlen(m + 1);
            bool keep = false;
            for (size_t i = 0; i < sizeof safe / sizeof *safe; i++)
                keep = keep || (strlen(safe[i]) == q && memcmp(safe[i], m + 1, q) == 0);
            for (size_t i = 0; !keep && q && i + q <= vis; i++)
                keep = memcmp(line + i, m + 1, q) == 0;
            wd_buf_putc(&o, *m);
            if (keep)
                wd_buf_put(&o, m + 1, q);
            else
                wd_buf_puts(&o, "***");
            if (close)
                wd_buf_putc(&o, *m);
            m = close ? close + 1 : m + 1 + q;
            continue;
        }
        if (strncmp(m, "number ", 7) == 0 || strncmp(m, "byte 0x", 7) == 0) {
            wd_buf_put(&o, m, 7);
            m += 7;
            if (is_alnum(*m) || *m == '-')
                wd_buf_puts(&o, "***");
            while (is_alnum(*m) || *m == '-')
                m++;
            continue;
        }
        wd_buf_putc(&o, *m++);
    }
    if (shows_masked_word(o.s, line + vis, n > vis ? n - vis : 0))
        wd_buf_puts(b, "error in a statement that may hold a secret (details not shown)");
    else
        wd_buf_puts(b, o.s);
    wd_buf_free(&o);
}

static int by_position(const void *a, const void *b)
{
    const struct wd_diag *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return 0;
}

char *wd_diags_render(const struct wd_diags *d)
{
    struct wd_buf b = {0};
    wd_buf_put(&b, "", 0);
    struct wd_diag *v = wd_malloc((d->n ? d->n : 1) * sizeof *v);
    if (d->n)
        memcpy(v, d->v, d->n * sizeof *v);
    /* insertion sort: stable, so equal positions keep the order they were reported in */
    for (size_t i = 1; i < d->n; i++) {
        struct wd_diag t = v[i];
        size_t j = i;
        while (j > 0 && by_position(&t, &v[j - 1]) < 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = t;
    }
    struct mask_walk mw = {d->src, d->src + d->srclen, 1, false};
    if (!d->policy || !d->src)
        mw.p = NULL;
    for (size_t i = 0; i < d->n; i++) {
        const struct wd_diag *g = &v[i];
        const char *sev = g->sev == WD_DIAG_ERROR ? "error" : "warning";
        if (g->line == 0) {
            wd_buf_printf(&b, "%s: %s: %s\n", d->file, sev, g->msg);
            continue;
        }
        const char *mt = NULL;
        size_t mn = 0;
        size_t from = walk_to(&mw, g->line, &mt, &mn);
        if (g->col)
            wd_buf_printf(&b, "%s:%u:%u: %s: ", d->file, g->line, g->col, sev);
        else
            wd_buf_printf(&b, "%s:%u: %s: ", d->file, g->line, sev);
        if (from && g->syntax && (g->col == 0 || g->col >= from))
            put_scrubbed(&b, g->msg, mt, mn, from);
        else
            wd_buf_puts(&b, g->msg);
        wd_buf_put(&b, "\n", 1);
        size_t len = 0;
        const char *lt = d->src ? line_text(d, g->line, &len) : NULL;
        if (!lt)
            continue;
        if (len > 200)
            len = 200;
        wd_buf_printf(&b, "%5u | ", g->line);
        /* show the line with control characters replaced, so output stays one line */
        for (size_t k = 0; k < len; k++) {
            char c = lt[k];
            if (redacted(d, g->line, k + 1) || (from && k + 1 >= from && c != ' ' && c != '\t'))
                c = '*';
            wd_buf_put(&b, (c == '\t') ? " " : ((unsigned char)c < 0x20 ? "?" : &c), 1);
        }
        wd_buf_put(&b, "\n", 1);
        if (g->col) {
            wd_buf_put(&b, "      | ", 8);
            for (unsigned k = 1; k < g->col && k <= len; k++)
                wd_buf_put(&b, " ", 1);
            wd_buf_put(&b, "^\n", 2);
        }
    }
    if (d->truncated)
        wd_buf_printf(&b, "%s: note: too many diagnostics; %zu errors and %zu warnings in all\n",
                      d->file, d->nerrors, d->nwarnings);
    free(v);
    return b.s;
}
