/* SPDX-License-Identifier: Apache-2.0 */
/*
 * h2.h: one HTTP/2 server session carrying unary gRPC calls. h2.c is the only file that
 * includes <nghttp2/nghttp2.h>; no nghttp2 type crosses this header.
 *
 * The caller (the connection, in h2server.c) owns the socket and the buffers: it feeds the
 * bytes it read to wd_h2_recv, asks wd_h2_send for the bytes to write, and closes the
 * connection when wd_h2_finished says so and its own output buffer is empty. Calls are
 * dispatched to the hook handlers (hook.c) synchronously, from inside wd_h2_recv, on the
 * worker's thread.
 *
 * What a peer can hold, and what bounds it (see docs/internals.md, "The h2 transport"):
 * - header list: counted here (name + value + 32 per field, and fields) for every block;
 * - in-flight calls per connection (streams opened and not answered): a budget; a stream
 *   over it is answered RESOURCE_EXHAUSTED trailers-only at once, the connection lives on;
 * - request bytes buffered: one message per stream, its 32-bit length checked against the
 *   request limit before anything is allocated, and the sum per connection and per process
 *   checked too (RESOURCE_EXHAUSTED); a connection holding less than WD_H2_CONN_GUARANTEE
 *   bytes is not refused for the process budget, so that peers holding large partial
 *   messages cannot starve the small calls of the others;
 * - slow peers: the client preface and its SETTINGS must arrive within handshake_ms of the
 *   session's start, and every frame (a header block with its CONTINUATIONs counts as one)
 *   within header_ms of its first byte: wd_h2_deadline says until when;
 * - time: every call has a deadline, min(grpc-timeout, a cap), enforced by a loop timer;
 * - protocol abuse: nghttp2's stream-reset rate limit and CONTINUATION cap, plus a counter
 *   of peer-provoked stream errors here, each ending the connection with GOAWAY;
 * - PINGs: nghttp2 answers them (at most 1000 ACKs queued); a peer pinging more often than
 *   min_ping_interval_ms without sending a request collects strikes (conntimer.h), and one
 *   over WD_PINGSTRIKES_MAX ends the connection with GOAWAY ENHANCE_YOUR_CALM
 *   "too_many_pings", as gRPC core does (wd_h2_recv returns WD_EIO).
 */
#ifndef WD_H2_H
#define WD_H2_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/hook.h"
#include "server/loop.h"

/* Shared by the connections of one worker; read-only for them. */
struct wd_h2_env {
    struct wd_hook_worker *hook;   /* the worker's handler state */
    struct wd_loop *loop;          /* the worker's loop (deadline timers, clock) */
    size_t request_limit;          /* largest request message (wd_config_request_limit) */
    size_t inflight_budget;        /* unanswered calls per connection */
    size_t conn_buffer_limit;      /* request bytes buffered per connection */
    size_t process_buffer_limit;   /* request bytes buffered by all sessions of the process */
    uint64_t handshake_ms;         /* session start -> the client preface and its SETTINGS */
    uint64_t header_ms;            /* first byte of a frame or header block -> its last byte */
    uint64_t min_ping_interval_ms; /* peer PINGs closer than this without a request: strikes */
    const atomic_bool *stopping;   /* set while the server drains (health: NOT_SERVING) */
    const atomic_bool *cancelled;  /* set when the shutdown grace expired: cancel calls */
};

struct wd_h2;

/* A new server session. `kick` is called (from a timer, never from inside wd_h2_recv) when
 * the session has new output outside of wd_h2_recv, e.g. after a deadline answer: the
 * connection should call wd_h2_send. */
struct wd_h2 *wd_h2_new(const struct wd_h2_env *env, void (*kick)(void *ctx), void *ctx);
/* Frees the session and every stream it holds (no callback is called). NULL is fine. */
void wd_h2_free(struct wd_h2 *h);

/* Feeds received bytes. Returns WD_OK, or WD_EIO when the connection must end: the caller
 * stops reading, flushes what wd_h2_send still gives (the GOAWAY) and closes. */
int wd_h2_recv(struct wd_h2 *h, const uint8_t *in, size_t len);

/* Serializes pending frames into append(ctx, p, n) until at least `room` bytes were given
 * or nothing is pending. Returns WD_OK or WD_EIO (session broken: close). */
int wd_h2_send(struct wd_h2 *h, size_t room, void (*append)(void *ctx, const void *p, size_t n),
               void *ctx);

/* Nothing more to read or write at the HTTP/2 level: close once the caller's output is
 * flushed. */
bool wd_h2_finished(const struct wd_h2 *h);
/* Whether wd_h2_send has something to give. */
bool wd_h2_want_write(const struct wd_h2 *h);

/* Graceful shutdown, step one: a GOAWAY with the last stream id 2^31-1 (the peer stops
 * opening streams soon). Step two, wd_h2_goaway: the final GOAWAY with the last stream
 * the session processed; the streams up to it are served, then wd_h2_finished turns true. */
void wd_h2_shutdown_notice(struct wd_h2 *h);
void wd_h2_goaway(struct wd_h2 *h);

/* Queues a PING (keepalive: the caller flushes, and any byte from the peer answers it). */
void wd_h2_ping(struct wd_h2 *h);

/* The loop time (ms) by which the session must make progress, 0 if nothing is pending:
 * start + handshake_ms until the client preface and its first SETTINGS frame arrived, then
 * while a frame or a header block is incomplete, its first byte's time + header_ms. The
 * connection closes at that time (a slow peer: slowloris). */
uint64_t wd_h2_deadline(const struct wd_h2 *h);
/* Whether the client preface and its first SETTINGS frame arrived. */
bool wd_h2_handshaken(const struct wd_h2 *h);

/* A connection buffering less than this is never refused for the process budget. */
#define WD_H2_CONN_GUARANTEE ((size_t)64 << 10)

/* Streams opened and not yet closed (in-flight calls). */
size_t wd_h2_open_streams(const struct wd_h2 *h);

/* grpc-timeout (PROTOCOL-HTTP2): 1 to 8 ASCII digits then one unit of H M S m u n, nothing
 * else. Stores milliseconds (rounded up, saturated at UINT64_MAX) in *ms. WD_OK or
 * WD_EINVAL. */
int wd_h2_parse_timeout(const char *s, size_t len, uint64_t *ms);

/* Percent-encodes a grpc-message value: bytes outside 0x20..0x7E and '%' become %XX. Writes
 * at most cap-1 bytes and a NUL; returns out. */
const char *wd_h2_percent_encode(char *out, size_t cap, const char *s);

/* Process-wide request bytes buffered by all sessions (tests, stats). */
size_t wd_h2_buffered_bytes(void);

#endif
