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
    for (size_t i = 0; i < d->n; i++) {
        const struct wd_diag *g = &v[i];
        const char *sev = g->sev == WD_DIAG_ERROR ? "error" : "warning";
        if (g->line == 0) {
            wd_buf_printf(&b, "%s: %s: %s\n", d->file, sev, g->msg);
            continue;
        }
        if (g->col)
            wd_buf_printf(&b, "%s:%u:%u: %s: %s\n", d->file, g->line, g->col, sev, g->msg);
        else
            wd_buf_printf(&b, "%s:%u: %s: %s\n", d->file, g->line, sev, g->msg);
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
            if (redacted(d, g->line, k + 1))
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
