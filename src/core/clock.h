/* SPDX-License-Identifier: Apache-2.0 */
/*
 * clock.h: the two clocks the engine reads, passed in so that tests move time without
 * waiting (CONVENTIONS.md: caches, sessions, token expiry). `mono_ms` never goes back and
 * runs TTLs and LRU order; `unix_s` is the wall clock a token's exp, nbf and iat are
 * compared with. A component takes a `const struct wd_clock *` at creation (NULL: the real
 * clocks) and keeps a copy; ctx belongs to whoever made the clock and must outlive every
 * component that copied it. Both functions may be called from any thread at once.
 */
#ifndef WD_CORE_CLOCK_H
#define WD_CORE_CLOCK_H

#include <stdint.h>

struct wd_clock {
    int64_t (*mono_ms)(void *ctx); /* milliseconds from some fixed point, never going back */
    int64_t (*unix_s)(void *ctx);  /* seconds since the Unix epoch */
    void *ctx;
};

/* The real clocks: CLOCK_MONOTONIC in milliseconds and time(); ctx NULL. */
extern const struct wd_clock wd_clock_real;

/* c, or &wd_clock_real when c is NULL. */
static inline const struct wd_clock *wd_clock_or_real(const struct wd_clock *c)
{
    return c ? c : &wd_clock_real;
}

static inline int64_t wd_clock_mono_ms(const struct wd_clock *c)
{
    return c->mono_ms(c->ctx);
}

static inline int64_t wd_clock_unix_s(const struct wd_clock *c)
{
    return c->unix_s(c->ctx);
}

#endif
