/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conntimer.h: the connection-level timers of the h2 transport as pure decisions on a clock
 * the caller passes in (no I/O, no nghttp2, no loop): the caller feeds what happened, asks
 * when to look again (wd_conntimer_next) and, at that time, what to do (wd_conntimer_due).
 * h2server.c keeps one loop timer per connection at that time; h2.c keeps the ping-strike
 * counter of its session.
 *
 * - keepalive (keepalive_time, keepalive_timeout): after keepalive_time without a byte
 *   from the peer, send a PING; if still nothing has arrived keepalive_timeout after it,
 *   the peer is dead. Any byte counts as an answer, the PING ACK included, so a busy
 *   connection is never pinged.
 * - recycling (max_connection_idle, max_connection_age): after idle_ms without an open
 *   stream, or once the connection is age_ms old (each connection's age jittered by up to
 *   +-10%, so connections opened together are not recycled together), the graceful
 *   two-step shutdown the server uses at SIGTERM: a shutdown notice (GOAWAY 2^31-1), the
 *   final GOAWAY goaway_delay_ms later, then grace_ms for the calls in flight before the
 *   connection is closed.
 * - ping strikes (min_ping_interval), as gRPC core's server counts them
 *   (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, GRPC_ARG_HTTP2_MAX_PING_STRIKES):
 *   a PING from the peer less than the interval after its previous one, with no request in
 *   between, is a strike; one strike more than the maximum and the peer is told off. A
 *   request clears the strikes.
 *
 * Times are milliseconds on the caller's clock; a clock reading of 0 is allowed.
 */
#ifndef WD_CONNTIMER_H
#define WD_CONNTIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wd_conntimer_cfg {
    uint64_t keepalive_time_ms;    /* > 0 */
    uint64_t keepalive_timeout_ms; /* > 0 */
    uint64_t idle_ms;              /* 0: never */
    uint64_t age_ms;               /* 0: never */
    uint64_t goaway_delay_ms;      /* shutdown notice -> final GOAWAY */
    uint64_t grace_ms;             /* final GOAWAY -> forced close */
};

enum wd_conntimer_action {
    WD_CONNTIMER_NONE = 0,
    WD_CONNTIMER_PING,    /* send a PING now */
    WD_CONNTIMER_DEAD,    /* nothing since the PING for keepalive_timeout: close now */
    WD_CONNTIMER_IDLE,    /* no stream for idle_ms: send the shutdown notice */
    WD_CONNTIMER_AGE,     /* age_ms old: send the shutdown notice */
    WD_CONNTIMER_GOAWAY,  /* goaway_delay_ms after the notice: send the final GOAWAY */
    WD_CONNTIMER_EXPIRED, /* grace_ms after the final GOAWAY: close now */
};

struct wd_conntimer {
    const struct wd_conntimer_cfg *cfg; /* borrowed */
    uint64_t last_recv;                 /* the last byte from the peer */
    uint64_t ping_at;                   /* our PING, when ping_out */
    uint64_t idle_since;                /* no stream open since, when idle */
    uint64_t age_at;                    /* recycle by age at, when aging */
    uint64_t stage_at;                  /* when the current shutdown stage began */
    bool ping_out, idle, aging;
    unsigned char stage; /* 0 open, 1 notice sent, 2 final GOAWAY sent, 3 grace over */
};

/* Starts the timers of a connection adopted at `now` (no stream open, nothing received
 * yet: `now` counts as the last byte). jitter_permille in [-100, 100] moves the age
 * (-100: 10% earlier). cfg is borrowed and must outlive t. */
void wd_conntimer_init(struct wd_conntimer *t, const struct wd_conntimer_cfg *cfg, uint64_t now,
                       int jitter_permille);

/* Bytes arrived from the peer at `now`. */
static inline void wd_conntimer_received(struct wd_conntimer *t, uint64_t now)
{
    t->last_recv = now;
}

/* The number of open streams changed (or was checked) at `now`. */
void wd_conntimer_streams(struct wd_conntimer *t, size_t open, uint64_t now);

/* The earliest time at which wd_conntimer_due may have something to do. Events only move
 * it later, except wd_conntimer_streams(0), which may bring the idle limit earlier. */
uint64_t wd_conntimer_next(const struct wd_conntimer *t);

/* What to do at `now`, one action per call (call again until NONE); the state advances as
 * if the action was done. */
enum wd_conntimer_action wd_conntimer_due(struct wd_conntimer *t, uint64_t now);

/* The ping-strike counter of one session. */
struct wd_pingstrikes {
    uint64_t interval_ms; /* min_ping_interval; 0: no strikes */
    unsigned max;         /* strikes tolerated */
    uint64_t last;        /* the peer's previous PING, when seen */
    unsigned strikes;
    bool seen;
};

/* gRPC core's default GRPC_ARG_HTTP2_MAX_PING_STRIKES */
#define WD_PINGSTRIKES_MAX 2u

void wd_pingstrikes_init(struct wd_pingstrikes *s, uint64_t interval_ms, unsigned max);
/* A PING (not an ACK) from the peer at `now`. Returns true when it is one strike over the
 * maximum: the peer pings too often (and goes on returning true). */
bool wd_pingstrikes_ping(struct wd_pingstrikes *s, uint64_t now);
/* A request from the peer: its pings are forgiven. */
void wd_pingstrikes_request(struct wd_pingstrikes *s);

#endif
