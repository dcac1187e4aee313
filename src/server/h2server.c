/* SPDX-License-Identifier: Apache-2.0 */
/*
 * h2server.c: the acceptor, the workers and their connections (see h2server.h).
 *
 * A connection belongs to one worker for its whole life: its socket, its output buffer,
 * its idle timer and its HTTP/2 session (h2.c) are only touched on that worker's thread.
 * Reading: up to READS_PER_EVENT reads of 16 KiB per readiness event, each fed to the
 * session; then one flush. Writing: the session's frames are copied into an output buffer
 * up to OUT_CAP, then written; while the buffer is over OUT_CAP the connection stops
 * reading (HEADERS, trailers, RST_STREAM and GOAWAY ignore flow control, so a peer that
 * never reads must not make warden queue without end). That buffer is the worker's scratch
 * when nothing is pending; bytes the socket did not take move to a buffer of the
 * connection's own, freed once written (an idle connection holds none: 4 KiB of RSS each).
 *
 * Closing: when the session has nothing more to read or write and the buffer is empty
 * (after a GOAWAY, or a session error), when the peer closes, or at one of the connection
 * timers (conntimer.h): a PING unanswered for keepalive_timeout, or the end of the grace
 * after recycling by max_connection_idle / max_connection_age (the shutdown notice, the
 * final GOAWAY, the grace: the same two steps as at SIGTERM). The connection is unlinked
 * and freed on the spot: wd_loop_io_del drops its pending events of the batch.
 *
 * One loop timer per connection, at the earliest of the slow-peer deadline (h2.c) and the
 * conntimer's next time. Reads do not touch it (they only move those times later); it is
 * set again when it fires, or earlier when the last stream closes and the idle limit
 * comes first.
 *
 * TLS: a connection first does its handshake (tlsconn.c), non-blocking, within
 * `handshake_timeout` and under a per-worker cap of handshakes in progress; its HTTP/2 session
 * starts after it. conn_read/conn_write put plain and TLS sockets behind the same calls.
 *
 * Calls run on the worker of their connection; one that waits for Redis or a slow password
 * hash is suspended and resumed there (h2.c, docs/internals.md "Calls that wait"), so no
 * worker blocks.
 */
#include "server/h2server.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "server/h2.h"
#include "server/hook.h"
#include "server/loop.h"
#include "server/loop_evops.h"
#include "server/conntimer.h"
#include "server/tlsconn.h"

#define READ_CHUNK (16u << 10)
#define READS_PER_EVENT 4
#define OUT_CAP (64u << 10)
#define OUT_SCRATCH (OUT_CAP + (32u << 10)) /* OUT_CAP plus the largest frame, with room */
#define ACCEPTS_PER_EVENT 64
#define ACCEPT_PAUSE_MS 500u
#define GOAWAY_DELAY_MS 100u /* from the shutdown notice to the final GOAWAY */
#define FD_HEADROOM 64       /* fds kept for Redis, files, logs: never given to peers */
#define CONN_BUFFER_MIN (8u << 20)
#define TLS_HANDSHAKES_MAX 64 /* per worker; over it the oldest handshake is dropped */
#define PEER_BUCKETS 1024u

struct worker;

struct conn {
    struct worker *w;
    struct wd_loop_io io;
    struct wd_h2 *h2;               /* NULL while the TLS handshake runs */
    struct wd_tlsconn *tls;         /* NULL: plain TCP (h2c) */
    struct conn *hs_prev, *hs_next; /* the worker's handshakes in progress, oldest first */
    uint8_t *out; /* NULL, the worker's scratch (inside conn_flush), or own while pending */
    size_t out_len, out_off, out_cap;
    bool out_borrowed;         /* out is the worker's scratch */
    bool read_done;            /* session error or EOF: read nothing more */
    int streams;               /* open streams as last added to the worker's count */
    uint8_t peer[16];          /* the peer's address (IPv4 as v4-mapped IPv6), for its count */
    struct wd_conntimer ct;    /* keepalive and recycling (conntimer.h) */
    struct wd_loop_timer idle; /* the one timer: handshake, slow peer, conntimer */
    struct conn *prev, *next;
};

struct worker {
    struct wd_h2server *srv;
    int idx;
    pthread_t th;
    bool started;
    struct wd_loop *loop;
    struct wd_hook_worker *hook;
    struct wd_h2_env env;
    struct conn *conns;
    atomic_int nconns; /* read by the acceptor (least loaded) and by stop */
    atomic_int nstreams;
    atomic_bool busy; /* inside a session's input (a handler may be running) */
    bool draining;
    struct wd_loop_timer goaway;
    struct wd_loop_timer quiesce;   /* at stop: waits for the hash checks still running */
    struct conn *hs_head, *hs_tail; /* TLS handshakes in progress, oldest first */
    int nhandshakes;
    uint64_t hs_dropped, hs_failed, last_hs_log, last_cap_log;
    uint64_t dead_peers, recycled_idle, recycled_age, grace_cut, last_dead_log, last_recycle_log;
    uint32_t rng;     /* xorshift32: the jitter of max_connection_age */
    uint8_t *scratch; /* output of the connection being flushed (OUT_SCRATCH bytes) */
};

struct wd_h2server {
    const struct wd_config *cfg;
    struct wd_hook_env hook_env;
    int lfd;
    int port;
    int max_conns;
    atomic_int nconns;
    atomic_bool stopping;
    atomic_bool cancelled;

    struct worker *workers;
    int nworkers;

    struct wd_loop *aloop;
    pthread_t ath;
    bool astarted;
    struct wd_loop_io lio;
    struct wd_loop_timer resume;
    uint64_t refused, last_refused_log, last_emfile_log;
    struct wd_tlsconn_ctx *tls; /* NULL: h2c; shared read-only by the workers */

    /* connections per peer address: the acceptor adds, the workers remove */
    pthread_mutex_t peers_mu;
    struct peer *peers[PEER_BUCKETS];
    int max_per_peer;
    uint32_t peer_seed;
    struct wd_conntimer_cfg timers; /* read-only once the workers run */
    uint64_t refused_peer, last_peer_log;
};

struct peer {
    uint8_t addr[16];
    int n;
    struct peer *next;
};

/* ---- connections per peer ---- */

static void peer_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    }
}

static struct peer **peer_slot(struct wd_h2server *s, const uint8_t key[16])
{
    uint32_t x = 2166136261u ^ s->peer_seed; /* FNV-1a, seeded per process */
    for (int i = 0; i < 16; i++)
        x = (x ^ key[i]) * 16777619u;
    struct peer **pp = &s->peers[x % PEER_BUCKETS];
    while (*pp && memcmp((*pp)->addr, key, 16) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Counts one more connection from key; false (and nothing counted) over the limit. */
static bool peer_take(struct wd_h2server *s, const uint8_t key[16])
{
    bool ok = true;
    pthread_mutex_lock(&s->peers_mu);
    struct peer **pp = peer_slot(s, key);
    if (!*pp) {
        *pp = wd_calloc(1, sizeof **pp);
        memcpy((*pp)->addr, key, 16);
    }
    if ((*pp)->n >= s->max_per_peer)
        ok = false;
    else
        (*pp)->n++;
    pthread_mutex_unlock(&s->peers_mu);
    return ok;
}

static void peer_release(struct wd_h2server *s, const uint8_t key[16])
{
    pthread_mutex_lock(&s->peers_mu);
    struct peer **pp = peer_slot(s, key);
    struct peer *p = *pp;
    if (p && --p->n <= 0) {
        *pp = p->next;
        free(p);
    }
    pthread_mutex_unlock(&s->peers_mu);
}

/* ---- connection I/O: plain and TLS sockets behind the same two calls ---- */

static void hs_unlink(struct conn *c)
{
    struct worker *w = c->w;
    if (c->hs_prev)
        c->hs_prev->hs_next = c->hs_next;
    else
        w->hs_head = c->hs_next;
    if (c->hs_next)
        c->hs_next->hs_prev = c->hs_prev;
    else
        w->hs_tail = c->hs_prev;
    c->hs_prev = c->hs_next = NULL;
    w->nhandshakes--;
}

/* Bytes read (> 0), WD_TLSCONN_EOF, WD_TLSCONN_AGAIN or WD_TLSCONN_ERROR. */
static ssize_t conn_read(struct conn *c, void *buf, size_t cap)
{
    if (c->tls)
        return wd_tlsconn_read(c->tls, buf, cap);
    for (;;) {
        ssize_t n = recv(c->io.fd, buf, cap, 0);
        if (n >= 0)
            return n; /* 0: WD_TLSCONN_EOF */
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? WD_TLSCONN_AGAIN : WD_TLSCONN_ERROR;
    }
}

/* Bytes taken (> 0), WD_TLSCONN_AGAIN or WD_TLSCONN_ERROR. */
static ssize_t conn_write(struct conn *c, const void *p, size_t n)
{
    if (c->tls)
        return wd_tlsconn_write(c->tls, p, n);
    for (;;) {
        ssize_t k = send(c->io.fd, p, n, MSG_NOSIGNAL);
        if (k > 0)
            return k;
        if (k < 0 && errno == EINTR)
            continue;
        return k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? WD_TLSCONN_AGAIN
                                                                  : WD_TLSCONN_ERROR;
    }
}

/* Decrypted bytes held inside OpenSSL wake no epoll: the reader drains them. */
static bool conn_read_pending(const struct conn *c)
{
    return c->tls && wd_tlsconn_pending(c->tls);
}

/* The readiness a TLS read or write that returned AGAIN waits for in the other direction. */
static unsigned conn_tls_wants(const struct conn *c)
{
    return c->tls ? wd_tlsconn_wants(c->tls) : 0;
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
    struct worker *w = c->w;
    wd_loop_io_del(w->loop, &c->io);
    wd_loop_timer_stop(w->loop, &c->idle);
    if (c->tls && !c->h2)
        hs_unlink(c);
    wd_tlsconn_free(c->tls); /* close_notify unless the connection broke */
    close(c->io.fd);
    atomic_fetch_sub(&w->nstreams, c->streams);
    wd_h2_free(c->h2);
    if (!c->out_borrowed)
        free(c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    atomic_fetch_sub(&w->nconns, 1);
    atomic_fetch_sub(&w->srv->nconns, 1);
    peer_release(w->srv, c->peer);
    free(c);
    wd_metrics_inc(WD_M_CONN_CLOSED);
}

static void out_append(void *ctx, const void *p, size_t n)
{
    struct conn *c = ctx;
    if (c->out_off && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        if (c->out_off) { /* compact first */
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 16384;
            while (cap < c->out_len + n)
                cap *= 2;
            if (c->out_borrowed) { /* never grow the worker's scratch: take our own */
                uint8_t *own = wd_malloc(cap);
                memcpy(own, c->out, c->out_len);
                c->out = own;
                c->out_borrowed = false;
            } else {
                c->out = wd_realloc(c->out, cap);
            }
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

/* Moves the connection's timer to `at` if that is earlier than where it is armed. */
static void conn_arm_earlier(struct conn *c, uint64_t at)
{
    if (!wd_loop_timer_armed(&c->idle) || at < c->idle.at)
        wd_loop_timer_start(c->w->loop, &c->idle, at);
}

/* After a flush: bytes the socket did not take move from the worker's scratch into a buffer
 * of the connection's own, and an own buffer emptied is freed, so a connection holds an
 * output buffer only while the socket is behind (an idle one holds none). */
static void out_settle(struct conn *c)
{
    size_t pending = c->out_len - c->out_off;
    if (pending && c->out_borrowed) {
        size_t cap = 16384;
        while (cap < pending)
            cap *= 2;
        uint8_t *own = wd_malloc(cap);
        memcpy(own, c->out + c->out_off, pending);
        c->out = own;
        c->out_cap = cap;
        c->out_off = 0;
        c->out_len = pending;
        c->out_borrowed = false;
    } else if (!pending) {
        if (!c->out_borrowed)
            free(c->out);
        c->out = NULL;
        c->out_cap = c->out_len = c->out_off = 0;
        c->out_borrowed = false;
    }
}

/* Pulls frames from the session, writes, re-arms interest, closes when done. Returns false
 * if the connection was freed. Frames are serialized into the worker's scratch buffer when
 * the connection has nothing pending (out_settle keeps what the socket did not take). */
static bool conn_flush(struct conn *c)
{
    struct worker *w = c->w;
    if (!c->out && wd_h2_want_write(c->h2)) {
        if (!w->scratch)
            w->scratch = wd_malloc(OUT_SCRATCH);
        c->out = w->scratch;
        c->out_cap = OUT_SCRATCH;
        c->out_borrowed = true;
    }
    for (;;) {
        size_t pending = c->out_len - c->out_off;
        if (pending < OUT_CAP && wd_h2_want_write(c->h2)) {
            if (wd_h2_send(c->h2, OUT_CAP - pending, out_append, c) != WD_OK)
                c->read_done = true;
            pending = c->out_len - c->out_off;
        }
        if (!pending)
            break;
        ssize_t n = conn_write(c, c->out + c->out_off, pending);
        if (n == WD_TLSCONN_AGAIN)
            break;
        if (n < 0) {
            conn_close(c); /* peer gone */
            return false;
        }
        c->out_off += (size_t)n;
        if (c->out_off == c->out_len)
            c->out_off = c->out_len = 0;
    }
    out_settle(c);
    size_t pending = c->out_len - c->out_off;
    bool more = wd_h2_want_write(c->h2);
    if (!pending && (wd_h2_finished(c->h2) || (c->read_done && !more))) {
        conn_close(c);
        return false;
    }
    int streams = (int)wd_h2_open_streams(c->h2);
    if (streams != c->streams) { /* in-flight calls, read by wd_h2server_stop */
        atomic_fetch_add(&c->w->nstreams, streams - c->streams);
        c->streams = streams;
        wd_conntimer_streams(&c->ct, (size_t)streams, wd_loop_now(c->w->loop));
        if (!streams) /* the idle limit may now come before the armed time */
            conn_arm_earlier(c, wd_conntimer_next(&c->ct));
    }
    unsigned mask = conn_tls_wants(c);
    if (!c->read_done && pending < OUT_CAP)
        mask |= WD_LOOP_READ;
    if (pending || more)
        mask |= WD_LOOP_WRITE;
    if (wd_loop_io_set(c->w->loop, &c->io, mask) != WD_OK) {
        conn_close(c);
        return false;
    }
    return true;
}

static void conn_kick(void *ctx)
{
    conn_flush(ctx);
}

static void log_handshake_failure(struct worker *w, const char *why)
{
    w->hs_failed++;
    uint64_t now = wd_loop_now(w->loop);
    if (now - w->last_hs_log >= 1000) {
        w->last_hs_log = now;
        wd_log_info("tls", "TLS handshake failed: %s (%llu failed on worker %d so far)", why,
                    (unsigned long long)w->hs_failed, w->idx);
    } else {
        wd_log_debug("tls", "TLS handshake failed: %s", why);
    }
}

static void conn_arm(struct conn *c);

/* Advances the TLS handshake; once it is done the HTTP/2 session starts. Returns true when
 * the session has just started, false while the handshake goes on or after a close. */
static bool conn_handshake(struct conn *c)
{
    struct worker *w = c->w;
    int rc = wd_tlsconn_handshake(c->tls);
    if (rc == WD_TLSCONN_AGAIN) {
        if (wd_loop_io_set(w->loop, &c->io, wd_tlsconn_wants(c->tls)) != WD_OK)
            conn_close(c);
        return false;
    }
    if (rc != WD_OK) {
        log_handshake_failure(w, wd_tlsconn_error(c->tls));
        conn_close(c);
        return false;
    }
    hs_unlink(c);
    c->h2 = wd_h2_new(&w->env, conn_kick, c);
    wd_conntimer_received(&c->ct, wd_loop_now(w->loop)); /* keepalive from the handshake */
    conn_arm(c); /* the HTTP/2 handshake deadline, from now */
    return true;
}

static void conn_on_io(struct wd_loop_io *io, unsigned events)
{
    struct conn *c = io->data;
    if (!c->h2) {
        if (!conn_handshake(c))
            return;
        events |= WD_LOOP_READ; /* the preface may have come with the client's Finished */
    }
    /* a TLS read may wait for writability (and a TLS write for readability: conn_flush) */
    bool readable = (events & WD_LOOP_READ) ||
                    ((events & WD_LOOP_WRITE) && (conn_tls_wants(c) & WD_LOOP_WRITE));
    if (readable && !c->read_done && c->out_len - c->out_off < OUT_CAP) {
        uint8_t buf[READ_CHUNK];
        for (int i = 0; i < READS_PER_EVENT || conn_read_pending(c); i++) {
            ssize_t n = conn_read(c, buf, sizeof buf);
            if (n > 0) {
                wd_conntimer_received(&c->ct, wd_loop_now(c->w->loop));
                atomic_store_explicit(&c->w->busy, true, memory_order_relaxed);
                if (wd_h2_recv(c->h2, buf, (size_t)n) != WD_OK)
                    c->read_done = true;
                atomic_store_explicit(&c->w->busy, false, memory_order_relaxed);
                /* TLS reads return one record each: go on to AGAIN (epoll is level-triggered
                 * for what is left in the socket, not for what OpenSSL holds) */
                if (c->read_done || (!c->tls && (size_t)n < sizeof buf))
                    break;
                continue;
            }
            if (n == WD_TLSCONN_AGAIN)
                break;
            conn_close(c); /* EOF (the peer closed: nobody to answer) or a broken socket */
            return;
        }
        /* a frame left incomplete may bring the slow-peer deadline before the idle one */
        uint64_t d = wd_h2_deadline(c->h2);
        if (d)
            conn_arm_earlier(c, d);
    }
    conn_flush(c);
}

/* The connection's one timer: at the earlier of the slow-peer deadline and the conntimer's. */
static void conn_arm(struct conn *c)
{
    uint64_t at = wd_conntimer_next(&c->ct), d = wd_h2_deadline(c->h2);
    wd_loop_timer_start(c->w->loop, &c->idle, d && d < at ? d : at);
}

/* Rate-limited (once a second per worker) log of the connections the timers end. */
static void log_timer_close(struct worker *w, const char *what, uint64_t *count)
{
    (*count)++;
    uint64_t now = wd_loop_now(w->loop);
    if (now - w->last_dead_log >= 1000) {
        w->last_dead_log = now;
        wd_log_info("h2", "closing a connection: %s (%llu so far on worker %d)", what,
                    (unsigned long long)*count, w->idx);
    } else {
        wd_log_debug("h2", "closing a connection: %s", what);
    }
}

static void log_recycle(struct worker *w, const char *why, uint64_t *count)
{
    (*count)++;
    uint64_t now = wd_loop_now(w->loop);
    if (now - w->last_recycle_log >= 1000) {
        w->last_recycle_log = now;
        wd_log_info("h2", "recycling a connection (%s): GOAWAY (%llu so far on worker %d)", why,
                    (unsigned long long)*count, w->idx);
    } else {
        wd_log_debug("h2", "recycling a connection (%s): GOAWAY", why);
    }
}

/* One action of the connection's timers. Returns false if the connection was freed. While
 * the server drains, its own GOAWAYs and grace apply and recycling does nothing. */
static bool conn_timer_act(struct conn *c, enum wd_conntimer_action a)
{
    struct worker *w = c->w;
    switch (a) {
    case WD_CONNTIMER_PING:
        wd_h2_ping(c->h2);
        return conn_flush(c);
    case WD_CONNTIMER_DEAD:
        log_timer_close(w, "no answer to a PING within keepalive_timeout", &w->dead_peers);
        conn_close(c);
        return false;
    case WD_CONNTIMER_IDLE:
    case WD_CONNTIMER_AGE:
        if (w->draining)
            return true;
        if (a == WD_CONNTIMER_IDLE)
            log_recycle(w, "max_connection_idle", &w->recycled_idle);
        else
            log_recycle(w, "max_connection_age", &w->recycled_age);
        wd_h2_shutdown_notice(c->h2);
        return conn_flush(c);
    case WD_CONNTIMER_GOAWAY:
        if (w->draining)
            return true;
        wd_h2_goaway(c->h2);
        return conn_flush(c);
    case WD_CONNTIMER_EXPIRED:
        if (w->draining)
            return true;
        log_timer_close(w, "calls still in flight at the end of max_connection_age_grace",
                        &w->grace_cut);
        conn_close(c);
        return false;
    case WD_CONNTIMER_NONE:
        break;
    }
    return true;
}

static void conn_on_idle(struct wd_loop_timer *t)
{
    struct conn *c = t->data;
    if (!c->h2) { /* TLS slowloris: the handshake has a deadline */
        log_handshake_failure(c->w, "not complete within the deadline");
        conn_close(c);
        return;
    }
    uint64_t now = wd_loop_now(c->w->loop);
    uint64_t d = wd_h2_deadline(c->h2);
    if (d && now >= d) {
        wd_log_debug("h2", "closing a slow connection: %s not complete in time",
                     wd_h2_handshaken(c->h2) ? "a frame" : "the client preface and SETTINGS");
        conn_close(c);
        return;
    }
    enum wd_conntimer_action a;
    while ((a = wd_conntimer_due(&c->ct, now)) != WD_CONNTIMER_NONE)
        if (!conn_timer_act(c, a))
            return;
    conn_arm(c);
}

struct handoff {
    struct worker *w;
    int fd;
    uint8_t peer[16];
};

/* A TLS connection starts with its handshake (deadline `handshake_timeout`); the HTTP/2
 * session starts after it. At most TLS_HANDSHAKES_MAX run at once per worker: over that the
 * oldest is dropped, so peers that stall handshakes (a TLS slowloris) must outpace a
 * legitimate handshake (a round trip and some crypto) to keep others out. */
static void adopt_tls(struct conn *c)
{
    struct worker *w = c->w;
    if (w->nhandshakes >= TLS_HANDSHAKES_MAX) {
        w->hs_dropped++;
        uint64_t now = wd_loop_now(w->loop);
        if (now - w->last_cap_log >= 1000) {
            w->last_cap_log = now;
            wd_log_warn("tls",
                        "%d TLS handshakes in progress on worker %d: closing the oldest "
                        "(%llu so far)",
                        TLS_HANDSHAKES_MAX, w->idx, (unsigned long long)w->hs_dropped);
        }
        conn_close(w->hs_head);
    }
    c->tls = wd_tlsconn_new(w->srv->tls, c->io.fd);
    c->hs_prev = w->hs_tail;
    if (w->hs_tail)
        w->hs_tail->hs_next = c;
    else
        w->hs_head = c;
    w->hs_tail = c;
    w->nhandshakes++;
    wd_loop_timer_start(w->loop, &c->idle, wd_loop_now(w->loop) + w->env.handshake_ms);
    if (wd_loop_io_set(w->loop, &c->io, WD_LOOP_READ) != WD_OK)
        conn_close(c);
}

static void worker_adopt(void *arg)
{
    struct handoff *ho = arg;
    struct worker *w = ho->w;
    int fd = ho->fd;
    if (w->draining) {
        close(fd);
        wd_metrics_inc(WD_M_CONN_CLOSED);
        atomic_fetch_sub(&w->nconns, 1);
        atomic_fetch_sub(&w->srv->nconns, 1);
        peer_release(w->srv, ho->peer);
        free(ho);
        return;
    }
    struct conn *c = wd_calloc(1, sizeof *c);
    memcpy(c->peer, ho->peer, sizeof c->peer);
    free(ho);
    c->w = w;
    c->io.fd = fd;
    c->io.cb = conn_on_io;
    c->io.data = c;
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 17;
    w->rng ^= w->rng << 5;
    wd_conntimer_init(&c->ct, &w->srv->timers, wd_loop_update_now(w->loop),
                      (int)(w->rng % 201u) - 100);
    c->idle.cb = conn_on_idle;
    c->idle.data = c;
    if (!w->srv->tls)
        c->h2 = wd_h2_new(&w->env, conn_kick, c);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    if (w->srv->tls) {
        adopt_tls(c);
        return;
    }
    conn_arm(c);   /* the handshake deadline */
    conn_flush(c); /* our SETTINGS go first */
}

/* ---- draining (posted by wd_h2server_stop) ---- */

static void worker_goaway(struct wd_loop_timer *t)
{
    struct worker *w = t->data;
    struct conn *c = w->conns;
    while (c) {
        struct conn *next = c->next;
        if (c->h2) {
            wd_h2_goaway(c->h2);
            conn_flush(c);
        }
        c = next;
    }
}

static void worker_drain(void *arg)
{
    struct worker *w = arg;
    w->draining = true;
    struct conn *c = w->conns;
    while (c) {
        struct conn *next = c->next;
        if (!c->h2) { /* a TLS handshake: no call to finish */
            conn_close(c);
        } else {
            wd_h2_shutdown_notice(c->h2);
            conn_flush(c);
        }
        c = next;
    }
    w->goaway.cb = worker_goaway;
    w->goaway.data = w;
    wd_loop_timer_start(w->loop, &w->goaway, wd_loop_now(w->loop) + GOAWAY_DELAY_MS);
}

/* The loop stops once no completion is due to it any more: a hash check of a call that
 * went away still posts to this loop when it finishes (bounded: the hash work limits). */
static void worker_quiesce(struct wd_loop_timer *t)
{
    struct worker *w = t->data;
    if (wd_hook_worker_waiting(w->hook) > 0) {
        wd_loop_timer_start(w->loop, &w->quiesce, wd_loop_now(w->loop) + 10);
        return;
    }
    wd_loop_stop(w->loop);
}

static void worker_close_all(void *arg)
{
    struct worker *w = arg;
    while (w->conns)
        conn_close(w->conns);
    wd_loop_timer_stop(w->loop, &w->goaway);
    w->quiesce.cb = worker_quiesce;
    w->quiesce.data = w;
    worker_quiesce(&w->quiesce);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    wd_loop_run(w->loop);
    return NULL;
}

/* ---- acceptor ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void accept_resume(struct wd_loop_timer *t)
{
    struct wd_h2server *s = t->data;
    if (!atomic_load(&s->stopping))
        wd_loop_io_set(s->aloop, &s->lio, WD_LOOP_READ);
}

static void hand_off(struct wd_h2server *s, int fd, const struct sockaddr_storage *ss)
{
    uint8_t key[16];
    peer_key(ss, key);
    if (atomic_load(&s->nconns) < s->max_conns && !peer_take(s, key)) {
        close(fd);
        s->refused_peer++;
        wd_metrics_inc(WD_M_CONN_REFUSED_PEER);
        uint64_t now = now_ms();
        if (now - s->last_peer_log >= 1000) {
            char a[INET6_ADDRSTRLEN] = "?";
            if (ss->ss_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, a, sizeof a);
            else if (ss->ss_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, a, sizeof a);
            s->last_peer_log = now;
            wd_log_warn("server",
                        "max_connections_per_peer (%d) reached by %s: its new connections are "
                        "closed at once (%llu so far, all peers)",
                        s->max_per_peer, a, (unsigned long long)s->refused_peer);
        }
        return;
    }
    if (atomic_load(&s->nconns) >= s->max_conns) {
        close(fd);
        s->refused++;
        wd_metrics_inc(WD_M_CONN_REFUSED_MAX);
        uint64_t now = now_ms();
        if (now - s->last_refused_log >= 1000) {
            s->last_refused_log = now;
            wd_log_warn("server",
                        "max_connections (%d) reached: new connections are closed at once "
                        "(%llu so far)",
                        s->max_conns, (unsigned long long)s->refused);
        }
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct worker *best = &s->workers[0];
    for (int i = 1; i < s->nworkers; i++)
        if (atomic_load(&s->workers[i].nconns) < atomic_load(&best->nconns))
            best = &s->workers[i];
    atomic_fetch_add(&best->nconns, 1);
    atomic_fetch_add(&s->nconns, 1);
    wd_metrics_inc(WD_M_CONN_ACCEPTED);
    struct handoff *ho = wd_malloc(sizeof *ho);
    ho->w = best;
    ho->fd = fd;
    memcpy(ho->peer, key, sizeof key);
    wd_loop_post(best->loop, worker_adopt, ho);
}

static void on_listen(struct wd_loop_io *io, unsigned events)
{
    struct wd_h2server *s = io->data;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            hand_off(s, fd, &ss);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* stop watching the listener (level-triggered: it would spin) and look again
             * later; the backlog waits in the kernel */
            uint64_t now = now_ms();
            if (now - s->last_emfile_log >= 1000) {
                s->last_emfile_log = now;
                wd_log_warn("server", "accept: %s: pausing accepts for %u ms", strerror(errno),
                            ACCEPT_PAUSE_MS);
            }
            wd_loop_io_set(s->aloop, &s->lio, 0);
            wd_loop_timer_start(s->aloop, &s->resume, wd_loop_now(s->aloop) + ACCEPT_PAUSE_MS);
            return;
        }
        /* ECONNABORTED, EINTR, EPROTO, ENETDOWN, ...: this one failed, take the next */
    }
}

static void acceptor_close(void *arg)
{
    struct wd_h2server *s = arg;
    wd_loop_io_del(s->aloop, &s->lio);
    wd_loop_timer_stop(s->aloop, &s->resume);
    close(s->lfd);
    s->lfd = -1;
    wd_loop_stop(s->aloop);
}

static void *acceptor_main(void *arg)
{
    struct wd_h2server *s = arg;
    wd_loop_run(s->aloop);
    return NULL;
}

/* ---- start / stop ---- */

static int bind_listener(const char *addr, int *fd_out, int *port_out, char *err, size_t errcap)
{
    *fd_out = -1;
    char h[256];
    const char *port;
    if (!wd_config_listen_split(addr, h, sizeof h, &port)) {
        wd_seterr(err, errcap, "cannot listen on %s: expected HOST:PORT", addr);
        return WD_EBIND;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *res = NULL;
    int gai = getaddrinfo(h[0] ? h : NULL, port, &hints, &res);
    if (gai != 0) {
        wd_seterr(err, errcap, "cannot listen on %s: cannot resolve '%.64s': %s", addr, h,
                  gai_strerror(gai));
        return WD_EBIND;
    }
    int last = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
            last = errno;
            close(fd);
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
        *fd_out = fd;
        break;
    }
    freeaddrinfo(res);
    if (*fd_out < 0) {
        wd_seterr(err, errcap, "cannot listen on %s: %s", addr,
                  last ? strerror(last) : "no address");
        return WD_EBIND;
    }
    return WD_OK;
}

/* Raises the soft fd limit to the hard one; returns the connections that fit under it. */
static int fd_budget(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0)
        return 1024 - FD_HEADROOM;
    if (r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
        getrlimit(RLIMIT_NOFILE, &r);
    }
    rlim_t n = r.rlim_cur == RLIM_INFINITY ? 1u << 20 : r.rlim_cur;
    return n > 2 * FD_HEADROOM ? (int)(n > (1u << 20) ? 1u << 20 : n) - FD_HEADROOM : (int)n / 2;
}

int wd_h2server_start(const struct wd_config *cfg, struct wd_engine *engine,
                      struct wd_h2server **out, char *err, size_t errcap)
{
    *out = NULL;
    struct wd_tlsconn_ctx *tls = NULL;
    if (cfg->tls_cert && wd_tlsconn_ctx_new(cfg, &tls, err, errcap) != WD_OK)
        return WD_ETLS; /* checked before binding: a bad file fails the start */
    struct wd_h2server *s = wd_calloc(1, sizeof *s);
    s->cfg = cfg;
    s->hook_env.cfg = cfg;
    s->hook_env.engine = engine;
    s->lfd = -1;
    s->port = -1;
    s->tls = tls;
    pthread_mutex_init(&s->peers_mu, NULL);
    s->peer_seed = (uint32_t)now_ms() ^ (uint32_t)getpid() * 2654435761u;
    int rc = bind_listener(cfg->listen, &s->lfd, &s->port, err, errcap);
    if (rc != WD_OK) {
        wd_tlsconn_ctx_free(s->tls);
        free(s);
        return rc;
    }
    int budget = fd_budget();
    s->max_conns = cfg->max_connections;
    if (s->max_conns > budget) {
        wd_log_warn("server",
                    "max_connections %d is above what RLIMIT_NOFILE allows with headroom: "
                    "using %d",
                    s->max_conns, budget);
        s->max_conns = budget;
    }
    s->max_per_peer =
        cfg->max_connections_per_peer < s->max_conns ? cfg->max_connections_per_peer : s->max_conns;
    s->timers = (struct wd_conntimer_cfg){
        .keepalive_time_ms = (uint64_t)cfg->keepalive_time_ms,
        .keepalive_timeout_ms = (uint64_t)cfg->keepalive_timeout_ms,
        .idle_ms = (uint64_t)cfg->max_connection_idle_ms,
        .age_ms = (uint64_t)cfg->max_connection_age_ms,
        .goaway_delay_ms = GOAWAY_DELAY_MS,
        .grace_ms = (uint64_t)cfg->max_connection_age_grace_ms,
    };

    s->nworkers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->nworkers < 1)
        s->nworkers = 1;
    size_t limit = (size_t)wd_config_request_limit(cfg);
    s->workers = wd_calloc((size_t)s->nworkers, sizeof *s->workers);
    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        w->srv = s;
        w->idx = i;
        w->loop = wd_loop_new(NULL, NULL);
        if (!w->loop) {
            wd_seterr(err, errcap, "cannot create an event loop: %s", strerror(errno));
            wd_h2server_free(s);
            return WD_EIO;
        }
        struct wd_evops ev;
        wd_loop_evops(w->loop, &ev);
        w->hook = wd_hook_worker_new_on(&s->hook_env, &ev);
        w->env.hook = w->hook;
        w->env.loop = w->loop;
        w->env.request_limit = limit;
        w->env.inflight_budget = (size_t)cfg->max_concurrent_streams;
        w->env.process_buffer_limit =
            (size_t)cfg->request_buffer_memory > limit ? (size_t)cfg->request_buffer_memory : limit;
        w->env.conn_buffer_limit = 4 * limit > CONN_BUFFER_MIN ? 4 * limit : CONN_BUFFER_MIN;
        if (w->env.conn_buffer_limit > w->env.process_buffer_limit)
            w->env.conn_buffer_limit = w->env.process_buffer_limit;
        w->env.handshake_ms = (uint64_t)cfg->handshake_timeout_ms;
        w->env.header_ms = (uint64_t)cfg->header_timeout_ms;
        w->env.min_ping_interval_ms = (uint64_t)cfg->min_ping_interval_ms;
        w->rng = (s->peer_seed ^ (uint32_t)(i + 1) * 2246822519u) | 1u;
        w->env.stopping = &s->stopping;
        w->env.cancelled = &s->cancelled;
    }
    s->aloop = wd_loop_new(NULL, NULL);
    if (!s->aloop) {
        wd_seterr(err, errcap, "cannot create an event loop: %s", strerror(errno));
        wd_h2server_free(s);
        return WD_EIO;
    }
    s->lio.fd = s->lfd;
    s->lio.cb = on_listen;
    s->lio.data = s;
    s->resume.cb = accept_resume;
    s->resume.data = s;
    wd_loop_io_set(s->aloop, &s->lio, WD_LOOP_READ);
    for (int i = 0; i < s->nworkers; i++) {
        if (pthread_create(&s->workers[i].th, NULL, worker_main, &s->workers[i]) != 0) {
            fprintf(stderr, "warden: cannot create worker thread, aborting\n");
            abort();
        }
        s->workers[i].started = true;
    }
    if (pthread_create(&s->ath, NULL, acceptor_main, s) != 0) {
        fprintf(stderr, "warden: cannot create the acceptor thread, aborting\n");
        abort();
    }
    s->astarted = true;

    char host[256];
    const char *colon = strrchr(cfg->listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - cfg->listen), cfg->listen);
    const char *mode = !s->tls ? "h2c" : wd_tlsconn_ctx_mutual(s->tls) ? "mtls" : "tls";
    wd_log_info("server",
                "listening on %s:%d (%s), %d workers, %zu methods on %s and %s "
                "(transport h2, max_connections %d, %d per peer)",
                host, s->port, mode, s->nworkers, wd_hook_nmethods(), wd_hook_services[0],
                wd_hook_services[1], s->max_conns, s->max_per_peer);
    wd_log_info("server", "requests up to %zu bytes (max_message_size %s), compressed ones refused",
                limit, cfg->max_message_size ? "set" : "auto, from the hooks");
    *out = s;
    return WD_OK;
}

int wd_h2server_port(const struct wd_h2server *s)
{
    return s->port;
}

int wd_h2server_stop(struct wd_h2server *s, int grace_ms)
{
    atomic_store(&s->stopping, true);
    if (s->astarted) {
        wd_loop_post(s->aloop, acceptor_close, s);
        pthread_join(s->ath, NULL);
        s->astarted = false;
    }
    wd_log_info("server", "shutting down: no new calls, in-flight calls have %d ms to finish",
                grace_ms);
    for (int i = 0; i < s->nworkers; i++)
        wd_loop_post(s->workers[i].loop, worker_drain, &s->workers[i]);
    uint64_t deadline = now_ms() + (uint64_t)grace_ms;
    int cancelled = 0;
    for (;;) {
        int conns = atomic_load(&s->nconns);
        if (conns == 0)
            break;
        if (now_ms() >= deadline) {
            int streams = 0;
            for (int i = 0; i < s->nworkers; i++)
                streams +=
                    atomic_load(&s->workers[i].nstreams) + (int)atomic_load(&s->workers[i].busy);
            if (streams > 0) {
                /* a worker still inside a handler answers CANCELLED when it returns */
                atomic_store(&s->cancelled, true);
                wd_log_warn("server", "shutdown grace of %d ms expired, closing %d connections",
                            grace_ms, conns);
                cancelled = 1;
            }
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < s->nworkers; i++)
        wd_loop_post(s->workers[i].loop, worker_close_all, &s->workers[i]);
    for (int i = 0; i < s->nworkers; i++) {
        if (s->workers[i].started)
            pthread_join(s->workers[i].th, NULL);
        s->workers[i].started = false;
    }
    wd_log_info("server", "stopped");
    return cancelled;
}

void wd_h2server_free(struct wd_h2server *s)
{
    if (!s)
        return;
    if (s->astarted || (s->workers && s->nworkers && s->workers[0].started))
        wd_h2server_stop(s, 0);
    for (int i = 0; s->workers && i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        while (w->conns)
            conn_close(w->conns);
        /* before the loop: the worker's Redis connection unregisters from it */
        wd_hook_worker_free(w->hook);
        wd_loop_free(w->loop);
        free(w->scratch);
    }
    free(s->workers);
    wd_tlsconn_ctx_free(s->tls);
    for (size_t i = 0; i < PEER_BUCKETS; i++) {
        while (s->peers[i]) {
            struct peer *p = s->peers[i];
            s->peers[i] = p->next;
            free(p);
        }
    }
    pthread_mutex_destroy(&s->peers_mu);
    wd_loop_free(s->aloop);
    if (s->lfd >= 0)
        close(s->lfd);
    free(s);
}
