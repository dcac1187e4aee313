/* SPDX-License-Identifier: Apache-2.0 */
/*
 * arena.c: see arena.h. Blocks grow from 16 KiB to 1 MiB; larger requests get a block of
 * their own.
 */
#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

#include "core/wd.h"

struct wd_arena_block {
    struct wd_arena_block *next;
    size_t size;
    max_align_t data[];
};

void wd_arena_init(struct wd_arena *a)
{
    memset(a, 0, sizeof *a);
}

void wd_arena_free(struct wd_arena *a)
{
    struct wd_arena_block *b = a->head;
    while (b) {
        struct wd_arena_block *n = b->next;
        free(b);
        b = n;
    }
    memset(a, 0, sizeof *a);
}

void *wd_arena_alloc(struct wd_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->size - a->used < n) {
        size_t sz = a->head ? a->head->size * 2 : 1024; /* small first: per-client ACLs */
        if (sz > (1u << 20))
            sz = 1u << 20;
        if (sz < n)
            sz = n;
        struct wd_arena_block *b = wd_malloc(sizeof *b + sz);
        b->size = sz;
        if (a->head && sz == n && a->head->size - a->used > 4096) {
            /* a big one-off: keep filling the current block afterwards */
            b->next = a->head->next;
            a->head->next = b;
            a->total += n;
            memset(b->data, 0, n);
            return b->data;
        }
        b->next = a->head;
        a->head = b;
        a->used = 0;
    }
    void *p = (char *)a->head->data + a->used;
    a->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

char *wd_arena_strndup(struct wd_arena *a, const char *s, size_t n)
{
    char *p = wd_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *wd_arena_strdup(struct wd_arena *a, const char *s)
{
    return wd_arena_strndup(a, s, strlen(s));
}
