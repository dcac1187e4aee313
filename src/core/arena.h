/* SPDX-License-Identifier: Apache-2.0 */
/*
 * arena.h: a bump allocator for data that lives and dies together (a parsed policy, a
 * compiled policy). Allocation aborts on OOM like wd_malloc; everything is released by
 * wd_arena_free. Not thread-safe: build on one thread, then share read-only.
 */
#ifndef WD_ARENA_H
#define WD_ARENA_H

#include <stddef.h>

struct wd_arena_block;

struct wd_arena {
    struct wd_arena_block *head;
    size_t used;  /* bytes used in head */
    size_t total; /* bytes handed out */
};

void wd_arena_init(struct wd_arena *a);
void wd_arena_free(struct wd_arena *a);
void *wd_arena_alloc(struct wd_arena *a, size_t n); /* zeroed, 16-byte aligned */
char *wd_arena_strndup(struct wd_arena *a, const char *s, size_t n);
char *wd_arena_strdup(struct wd_arena *a, const char *s);

#endif
