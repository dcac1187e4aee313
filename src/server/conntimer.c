/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conntimer.c: keepalive, recycling and ping strikes as pure decisions (see conntimer.h).
 *
 * The caller's loop timer is armed lazily: it is set at wd_conntimer_next when it fires,
 * and received bytes only move that time later, so a busy connection costs no timer
 * operation per read; a timer that fires early finds nothing due and is set again.
 */
#include "server/conntimer.h"

void wd_conntimer_init(struct wd_conntimer *t, const struct wd_conntimer_cfg *cfg, uint64_t now,
                       int jitter_permille)
{
    *t = (struct wd_conntimer){.cfg = cfg, .last_recv = now, .idle = true, .idle_since = now};
    if (cfg->age_ms) {
        if (jitter_permille < -100)
            jitter_permille = -100;
        if (jitter_permille > 100)
            jitter_permille = 100;
        /* age_ms <= 7 days (config): the product fits in 64 bits */
        t->age_at = now + cfg->age_ms * (uint64_t)(1000 + jitter_permille) / 1000u;
        t->aging = true;
    }
}

void wd_conntimer_streams(struct wd_conntimer *t, size_t open, uint64_t now)
{
    if (open) {
        t->idle = false;
    } else if (!t->idle) {
        t->idle = true;
        t->idle_since = now;
    }
}

static bool ping_outstanding(const struct wd_conntimer *t)
{
    /* a byte read after the PING went out answers it (a read in the same millisecond too:
     * the PING is only sent keepalive_time after the last read) */
    return t->ping_out && t->last_recv < t->ping_at;
}

uint64_t wd_conntimer_next(const struct wd_conntimer *t)
{
    const struct wd_conntimer_cfg *c = t->cfg;
    uint64_t at = ping_outstanding(t) ? t->ping_at + c->keepalive_timeout_ms
                                      : t->last_recv + c->keepalive_time_ms;
    uint64_t s = UINT64_MAX;
    switch (t->stage) {
    case 0:
        if (c->idle_ms && t->idle)
            s = t->idle_since + c->idle_ms;
        if (t->aging && t->age_at < s)
            s = t->age_at;
        break;
    case 1:
        s = t->stage_at + c->goaway_delay_ms;
        break;
    case 2:
        s = t->stage_at + c->grace_ms;
        break;
    default:
        break;
    }
    return s < at ? s : at;
}

enum wd_conntimer_action wd_conntimer_due(struct wd_conntimer *t, uint64_t now)
{
    const struct wd_conntimer_cfg *c = t->cfg;
    if (ping_outstanding(t)) {
        if (now >= t->ping_at + c->keepalive_timeout_ms)
            return WD_CONNTIMER_DEAD;
    } else if (now >= t->last_recv + c->keepalive_time_ms) {
        t->ping_out = true;
        t->ping_at = now;
        return WD_CONNTIMER_PING;
    }
    switch (t->stage) {
    case 0:
        if (c->idle_ms && t->idle && now >= t->idle_since + c->idle_ms) {
            t->stage = 1;
            t->stage_at = now;
            return WD_CONNTIMER_IDLE;
        }
        if (t->aging && now >= t->age_at) {
            t->stage = 1;
            t->stage_at = now;
            return WD_CONNTIMER_AGE;
        }
        break;
    case 1:
        if (now >= t->stage_at + c->goaway_delay_ms) {
            t->stage = 2;
            t->stage_at = now;
            return WD_CONNTIMER_GOAWAY;
        }
        break;
    case 2:
        if (now >= t->stage_at + c->grace_ms) {
            t->stage = 3;
            return WD_CONNTIMER_EXPIRED;
        }
        break;
    default:
        break;
    }
    return WD_CONNTIMER_NONE;
}

/* ---- ping strikes ---- */

void wd_pingstrikes_init(struct wd_pingstrikes *s, uint64_t interval_ms, unsigned max)
{
    *s = (struct wd_pingstrikes){.interval_ms = interval_ms, .max = max};
}

bool wd_pingstrikes_ping(struct wd_pingstrikes *s, uint64_t now)
{
    if (s->seen && s->interval_ms && now < s->last + s->interval_ms && s->strikes <= s->max)
        s->strikes++;
    s->seen = true;
    s->last = now;
    return s->strikes > s->max;
}

void wd_pingstrikes_request(struct wd_pingstrikes *s)
{
    s->seen = false;
    s->strikes = 0;
}
