/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_async.c: hiredis 0.14's async API on a worker's loop (redis_async.h). The pitfalls
 * it is built around are in /work/shared/research/transport.md section 3; in short:
 *
 * - The event hooks only record the interest mask and call io_set when it changes (they
 *   are called after every read and every command, "should be idempotent"), so each fd
 *   has one registration, modified in place.
 * - hiredis frees its context on EOF, errors and failed connects, from inside
 *   redisAsyncHandleRead/Write; the cleanup hook then clears r->ac and frees the io
 *   handle, and nothing touches the context after a handler returns with r->lost set (no
 *   HandleWrite after a HandleRead that freed it). The adapter state is this struct,
 *   never freed by hiredis.
 * - The client frees a context (redisAsyncFree) only from the loop (a timer, an fd event
 *   after hiredis returned, or wd_redis_async_free), never from a hiredis callback, where
 *   0.14 double-frees (onConnect/onDisconnect run outside REDIS_IN_CALLBACK). Reconnects
 *   always get a new context, from a timer or after the handler returned.
 * - hiredis runs every queued callback exactly once, with the reply or with NULL when the
 *   context dies. Each request is a struct req given as privdata; it lives until both its
 *   hiredis callback ran (in_redis) and its completion ran or was cancelled (in_done,
 *   answered). A request answered early (deadline, cancel) stays in the FIFO until its
 *   reply or NULL comes, so the late reply is dropped, not given to the next request.
 * - Completions are never run from inside hiredis: replies are parsed (the reply dies
 *   after the callback) into the request, which goes to a done list, delivered in order
 *   after hiredis returned (finish()). A completion may therefore submit, cancel, or free.
 * - 0.14 has no timeouts: one timer per connection is armed for the earliest of the
 *   requests' deadlines, the watchdog (oldest request in the FIFO + stall_ms), the connect
 *   deadline, or the end of the backoff; tick() does whatever is due and re-arms.
 * - Re-sending after a loss: each request keeps its command as formatted for hiredis (cmd).
 *   When hiredis fails a request because it closed the context itself on EOF or an I/O
 *   error (ac->err: our own redisAsyncFree leaves it 0, so shutdown, the watchdog, a connect
 *   timeout and AUTH refused never re-send), on_reply() parks it (may_resend()) instead of
 *   answering it; hiredis fails the FIFO in order, so the parked list keeps the pipeline's
 *   order. on_lost() reconnects (at once, or after the backoff) and start_connect() queues
 *   the parked requests right behind AUTH/SELECT with redisAsyncFormattedCommand, each with
 *   its own callback again, before any later submit can be queued: replies still meet their
 *   requests by their place in the new pipeline. retried marks the one re-send; a re-sent
 *   request whose new connection failed before it was ready is parked again (nothing ran it
 *   there). Parked requests keep their deadline (tick), can be cancelled, and are answered
 *   "shutting down" by wd_redis_async_free.
 * - With Sentinel, a failover loses fewer calls: the requests a connection held when the
 *   master moved (follow_master: our own redisAsyncFree, r->moving) are parked like a loss,
 *   their one re-send going to the new master; those a server refused or answered after it
 *   said it is not the master (READONLY, MASTERDOWN, ROLE: r->not_master) are parked "held"
 *   (hold_gen): re-sent only on a connection of another generation, i.e. to the next master
 *   Sentinel publishes, never to the demoted one again; and a request submitted while there
 *   is no connection (the backoff after a refused connect, or a connection that said it is
 *   not the master) is parked "fresh" instead of being refused: it was sent nowhere, so
 *   sending it later is its first send. While anything is parked, the timer looks at the
 *   generation every GEN_POLL_MS (an atomic load) and follows a new master at once. All of
 *   it within each request's deadline: what is still parked then gets redis_on_error.
 */
#include "store/redis_async.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/metrics.h"
#include "core/wd.h"
#include "store/redis_int.h"
#include "store/redis_sentinel.h"

/* ST_IDLE: the server closed a connection that had answered (a restart, its idle timeout):
 * no connection until the next request, which reconnects at once (as the blocking client
 * does on EOF). Reconnecting right at the close would race a restarting server: refused,
 * then a backoff that fails the first requests after the restart. */
enum state { ST_CONNECTING, ST_READY, ST_BACKOFF, ST_IDLE, ST_CLOSED };
enum kind { K_USER, K_ACL, K_RAW };

struct req {
    struct req *prev, *next; /* FIFO of requests hiredis holds (in_redis) */
    struct req *dnext;       /* done list (in_done) */
    struct req *pnext;       /* parked list (parked) */
    struct wd_redis_async *r;
    enum kind kind;
    bool in_redis; /* hiredis' callback has not run yet */
    bool in_done;  /* answer decided, completion not yet run */
    bool answered; /* answer decided (done, delivered or cancelled) */
    bool retried;  /* lost once already: the next loss fails it */
    bool fresh;    /* parked when submitted (no connection then): never sent to a master */
    bool hold;     /* parked until the Sentinel generation moves past hold_gen */
    uint64_t hold_gen;
    wd_redis_async_cb cb;
    void *ctx;
    wd_redis_acl_skip_fn skip;
    void *skip_ud;
    size_t max_len; /* K_RAW: longest string reply copied */
    uint64_t sent_at, deadline;
    char *cmd; /* the command as sent (RESP), kept for the one re-send */
    size_t cmdlen;
    struct wd_redis_async_result res;
};

struct wd_redis_async {
    struct wd_evops ev;
    char *addr; /* numeric, resolved once in _new (with Sentinel: the master's, per connect) */
    int port;
    struct wd_redis_sentinel *sentinel; /* NULL: addr/port or unix_path */
    uint64_t gen;                       /* the sentinel generation of addr */
    char *unix_path;
    char *username;
    char *password;
    int database;
    unsigned connect_timeout_ms, command_timeout_ms;
    unsigned backoff_initial_ms, backoff_max_ms;
    unsigned max_inflight, stall_ms;

    redisAsyncContext *ac;
    void *io;
    unsigned mask; /* interest registered for ac's fd */
    void *timer;
    uint64_t timer_at; /* 0: not armed */
    enum state state;
    uint64_t connect_deadline, reconnect_at;
    unsigned backoff_ms;
    uint64_t rng;
    int setup_pending; /* AUTH/SELECT replies still to come */
    bool healthy;      /* this connection answered a request while ready */
    bool lost;         /* cleanup ran: ac is gone, on_lost() has not run yet */
    bool kill_pending; /* free the context once out of hiredis */
    bool delivering, closing, free_pending;
    bool not_master; /* this connection's server said it is not the master (READONLY,
                      * MASTERDOWN, ROLE): what it held waits for the next one (hold) */
    bool moving;     /* follow_master() is freeing the context: what it held is re-sent */

    struct req *head, *tail; /* FIFO */
    size_t inflight;
    struct req *dhead, *dtail; /* done list */
    struct req *phead, *ptail; /* parked: to re-send first on the next connection */
    size_t nparked;

    struct wd_redis_async_stats st;
    char err[160];
};

/* How often requests parked with Sentinel look for a new master (an atomic load) */
#define GEN_POLL_MS 20

static void tick(void *arg);
static void follow_master(struct wd_redis_async *r);
static void finish(struct wd_redis_async *r);
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);
static void destroy(struct wd_redis_async *r);

static void set_err(struct wd_redis_async *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_err(struct wd_redis_async *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

static uint64_t now(const struct wd_redis_async *r)
{
    return r->ev.now(r->ev.loop);
}

/* ---- the timer ---- */

static void arm(struct wd_redis_async *r, uint64_t at)
{
    if (at == 0)
        at = 1; /* 0 means "not armed" here; 1 is as due as 0 */
    r->ev.timer_start(r->ev.loop, r->timer, at);
    r->timer_at = at;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Arms the timer for the earliest thing due (walks the FIFO: bounded by max_inflight). */
static void rearm(struct wd_redis_async *r)
{
    uint64_t at = UINT64_MAX;

    if (r->state == ST_CLOSED) {
        r->ev.timer_stop(r->ev.loop, r->timer);
        r->timer_at = 0;
        return;
    }
    if (r->kill_pending)
        at = 1;
    if (r->state == ST_BACKOFF)
        at = min64(at, r->reconnect_at);
    if (r->state == ST_CONNECTING)
        at = min64(at, r->connect_deadline);
    if (r->state == ST_READY && r->head)
        at = min64(at, r->head->sent_at + r->stall_ms);
    for (struct req *q = r->head; q; q = q->next)
        if (!q->answered)
            at = min64(at, q->deadline);
    for (struct req *q = r->phead; q; q = q->pnext)
        at = min64(at, q->deadline);
    if (r->sentinel && r->phead) /* waiting for a master: look at the generation */
        at = min64(at, now(r) + GEN_POLL_MS);
    if (at == UINT64_MAX) {
        r->ev.timer_stop(r->ev.loop, r->timer);
        r->timer_at = 0;
    } else {
        arm(r, at);
    }
}

/* ---- requests ---- */

static void res_release(struct wd_redis_async_result *res)
{
    wd_redis_user_cleanup(&res->user);
    wd_acl_entries_free(res->acl, res->nacl);
    res->acl = NULL;
    res->nacl = 0;
    wd_redis_raw_cleanup(&res->raw);
}

static void req_free(struct req *q)
{
    res_release(&q->res);
    free(q->cmd); /* redisFreeCommand() is free() */
    free(q);
}

static void fifo_unlink(struct wd_redis_async *r, struct req *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        r->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        r->tail = q->prev;
    q->prev = q->next = NULL;
    q->in_redis = false;
    r->inflight--;
}

static void push_done(struct wd_redis_async *r, struct req *q)
{
    q->answered = true;
    q->in_done = true;
    q->dnext = NULL;
    if (r->dtail)
        r->dtail->dnext = q;
    else
        r->dhead = q;
    r->dtail = q;
}

/* Runs the completions decided so far, in order. Called last by every entry point from the
 * loop (fd event, timer); a completion may call anything, including wd_redis_async_free,
 * which is then finished here. */
static void deliver(struct wd_redis_async *r)
{
    struct req *q;

    r->delivering = true;
    while ((q = r->dhead) != NULL) {
        r->dhead = q->dnext;
        if (!r->dhead)
            r->dtail = NULL;
        q->in_done = false;
        if (q->cb)
            q->cb(q->ctx, &q->res);
        res_release(&q->res);
        q->cb = NULL;
        if (!q->in_redis)
            req_free(q);
    }
    r->delivering = false;
}

static void finish(struct wd_redis_async *r)
{
    deliver(r);
    if (r->free_pending)
        destroy(r);
}

/* ---- re-sending what a lost connection took ---- */

/* Whether a request hiredis is failing (no reply: its context is dying) goes to the next
 * connection instead. Only when hiredis itself closed the context because the server hung
 * up or reset it (ac->err EOF or I/O error; never our own redisAsyncFree: shutting down,
 * the watchdog, a connect timeout, AUTH refused), within the request's deadline, and:
 * - the lost connection was ready and the request had not been lost before (its one
 *   re-send), or
 * - it is that re-send whose new connection failed before it was ready (refused while the
 *   server restarts): nothing ran it yet, it waits for the next one. */
static bool may_resend(const struct wd_redis_async *r, const redisAsyncContext *ac,
                       const struct req *q)
{
    if (r->state == ST_CLOSED || q->deadline <= now(r))
        return false;
    if (r->moving || r->not_master) /* the master moved: once, to the next one */
        return !q->retried;
    if (ac->err != REDIS_ERR_EOF && ac->err != REDIS_ERR_IO)
        return false;
    /* connecting: the re-send whose connection failed before it was ready (nothing ran it
     * there), a request that waited for a connection, or with Sentinel any request (the
     * master's address refuses: it waits for the next one, its one re-send) */
    return r->state == ST_READY
               ? !q->retried
               : r->state == ST_CONNECTING && (q->retried || q->fresh || r->sentinel != NULL);
}

static void park_tail(struct wd_redis_async *r, struct req *q)
{
    q->pnext = NULL;
    if (r->ptail)
        r->ptail->pnext = q;
    else
        r->phead = q;
    r->ptail = q;
    r->nparked++;
}

/* A request hiredis held goes to the next connection (its one re-send); when the server
 * said it is not the master, to the next master only (hold: the generation must move). */
static void park(struct wd_redis_async *r, struct req *q)
{
    if (!q->retried) {
        q->retried = true;
        r->st.retried++;
        wd_metrics_inc(WD_M_REDIS_RETRIED);
    }
    if (r->not_master) {
        q->hold = true;
        q->hold_gen = r->gen;
    }
    park_tail(r, q);
}

static struct req *unpark_head(struct wd_redis_async *r)
{
    struct req *q = r->phead;
    if (!q)
        return NULL;
    r->phead = q->pnext;
    if (!r->phead)
        r->ptail = NULL;
    q->pnext = NULL;
    r->nparked--;
    return q;
}

static void fifo_append(struct wd_redis_async *r, struct req *q)
{
    q->in_redis = true;
    q->prev = r->tail;
    q->next = NULL;
    if (r->tail)
        r->tail->next = q;
    else
        r->head = q;
    r->tail = q;
    r->inflight++;
}

/* Answers the parked requests that pass test (all when test is NULL) with rc. */
static void fail_parked(struct wd_redis_async *r, bool (*test)(const struct req *, uint64_t),
                        uint64_t t, int rc, const char *why)
{
    struct req **pp = &r->phead, *last = NULL;
    while (*pp) {
        struct req *q = *pp;
        if (test && !test(q, t)) {
            last = q;
            pp = &q->pnext;
            continue;
        }
        *pp = q->pnext;
        q->pnext = NULL;
        r->nparked--;
        q->res.rc = rc;
        wd_seterr(q->res.err, sizeof q->res.err, "%s", why);
        if (rc == WD_ETIMEDOUT)
            r->st.timeouts++;
        else
            r->st.failed++;
        push_done(r, q);
    }
    r->ptail = last;
}

static bool past_deadline(const struct req *q, uint64_t t)
{
    return q->deadline <= t;
}

/* On a new context, right behind AUTH/SELECT and before anything submitted after it: the
 * parked requests in their order, each with its own callback, so replies keep matching
 * requests by their place in the pipeline. */
static void resend_parked(struct wd_redis_async *r)
{
    struct req *q, *kh = NULL, *kt = NULL;
    size_t kept = 0;
    uint64_t t = now(r);

    while ((q = unpark_head(r)) != NULL) {
        if (q->hold && q->hold_gen == r->gen) { /* the same (demoted) master: not there */
            q->pnext = NULL;
            if (kt)
                kt->pnext = q;
            else
                kh = q;
            kt = q;
            kept++;
            continue;
        }
        q->hold = false;
        if (redisAsyncFormattedCommand(r->ac, on_reply, q, q->cmd, q->cmdlen) != REDIS_OK) {
            q->res.rc = WD_EBACKEND;
            wd_seterr(q->res.err, sizeof q->res.err, "connection lost; re-send refused");
            r->st.failed++;
            push_done(r, q);
            continue;
        }
        q->sent_at = t;
        fifo_append(r, q);
    }
    r->phead = kh;
    r->ptail = kt;
    r->nparked = kept;
}

/* hiredis' callback for a lookup: exactly once per request, reply or NULL */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct req *q = privdata;
    struct wd_redis_async *r = q->r;
    redisReply *rep = reply;

    fifo_unlink(r, q);
    if (rep && r->state == ST_READY) {
        r->healthy = true;
        r->backoff_ms = r->backoff_initial_ms; /* the server answers */
    }
    if (q->answered) { /* timed out or cancelled: drop the late reply */
        if (rep) {
            r->st.late++;
            if (q->kind == K_USER)
                wd_redis__user_reply_wipe(rep);
        }
        if (!q->in_done)
            req_free(q);
        return;
    }
    if (rep && r->sentinel && wd_redis__reply_not_master(rep)) {
        /* a replica answers: the master moved. This connection goes, Sentinel is told. */
        set_err(r, "not the master: %.100s", rep->str);
        r->kill_pending = true;
        r->not_master = true;
        wd_redis_sentinel_suspect(r->sentinel);
    }
    /* no reply (the connection is lost or moving), or a reply from a server that is not the
     * master (refused, or possibly stale): re-sent once, on the next connection or the next
     * master, within the deadline */
    if ((!rep || (r->kill_pending && r->not_master)) && may_resend(r, ac, q)) {
        if (rep && q->kind == K_USER)
            wd_redis__user_reply_wipe(rep);
        park(r, q);
        return;
    }
    if (rep && r->kill_pending) {
        /* the connection is being dropped (its set-up failed: AUTH, SELECT, ROLE said replica;
         * or a replica answered): a reply that came in the same read is not one to trust. A
         * replica answers a user lookup with the hash all the same: wiped like any other. */
        q->res.rc = WD_EBACKEND;
        wd_seterr(q->res.err, sizeof q->res.err, "no reply: %.100s", r->err);
        r->st.failed++;
        if (q->kind == K_USER)
            wd_redis__user_reply_wipe(rep);
    } else if (!rep) {
        q->res.rc = WD_EBACKEND;
        wd_seterr(q->res.err, sizeof q->res.err, "no reply: %.100s",
                  ac->errstr[0] ? ac->errstr : r->err);
        r->st.failed++;
    } else if (q->kind == K_USER) {
        q->res.rc = wd_redis__user_from_reply(rep, &q->res.user, q->res.err, sizeof q->res.err);
        wd_redis__user_reply_wipe(rep);
        r->st.replied++;
    } else if (q->kind == K_ACL) {
        q->res.rc = wd_redis__acl_from_reply(rep, &q->res.acl, &q->res.nacl, q->skip, q->skip_ud,
                                             q->res.err, sizeof q->res.err);
        r->st.replied++;
    } else {
        q->res.rc =
            wd_redis__raw_from_reply(rep, q->max_len, &q->res.raw, q->res.err, sizeof q->res.err);
        r->st.replied++;
    }
    push_done(r, q);
}

/* ---- event hooks (ac->ev) ---- */

static void set_mask(struct wd_redis_async *r, unsigned mask)
{
    if (!r->io || mask == r->mask)
        return;
    if (r->ev.io_set(r->ev.loop, r->io, mask) != WD_OK) {
        set_err(r, "epoll_ctl failed");
        r->kill_pending = true; /* done by the next tick, outside hiredis */
        return;
    }
    r->mask = mask;
}

static void h_add_read(void *d)
{
    struct wd_redis_async *r = d;
    set_mask(r, r->mask | WD_EV_READ);
}

static void h_del_read(void *d)
{
    struct wd_redis_async *r = d;
    set_mask(r, r->mask & ~WD_EV_READ);
}

static void h_add_write(void *d)
{
    struct wd_redis_async *r = d;
    set_mask(r, r->mask | WD_EV_WRITE);
}

static void h_del_write(void *d)
{
    struct wd_redis_async *r = d;
    set_mask(r, r->mask & ~WD_EV_WRITE);
}

/* hiredis is freeing the context (the fd is closed right after): forget both */
static void h_cleanup(void *d)
{
    struct wd_redis_async *r = d;
    if (r->io)
        r->ev.io_free(r->ev.loop, r->io);
    r->io = NULL;
    r->mask = 0;
    r->ac = NULL;
    r->lost = true;
}

/* hiredis frees the context after a failed connect, no onDisconnect follows: only note
 * why (on_lost() runs once hiredis returned) */
static void on_connect(const redisAsyncContext *ac, int status)
{
    struct wd_redis_async *r = ac->ev.data;
    if (status != REDIS_OK) {
        set_err(r, "connect: %s", ac->errstr);
        return;
    }
    if (r->setup_pending == 0 && r->state == ST_CONNECTING) {
        r->state = ST_READY;
        r->st.connects++;
    }
}

/* the context is freed after this returns; reconnecting is on_lost()'s, from the loop */
static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct wd_redis_async *r = ac->ev.data;
    if (status != REDIS_OK && ac->errstr[0])
        set_err(r, "connection lost: %s", ac->errstr);
}

/* AUTH or SELECT; privdata is the command's name */
static void on_setup(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct wd_redis_async *r = ac->ev.data;
    char why[120];

    if (!reply)
        return; /* the context is dying: on_lost() */
    bool ok = strcmp(privdata, "ROLE") == 0
                  ? wd_redis__role_from_reply(reply, why, sizeof why) == WD_OK
                  : wd_redis__setup_reply_ok(reply, why, sizeof why);
    if (!ok) {
        set_err(r, "%s: %s", (const char *)privdata, why);
        r->kill_pending = true;
        r->not_master = strcmp(privdata, "ROLE") == 0 &&
                        wd_redis__role_from_reply(reply, why, sizeof why) == WD_ENOENT;
        if (r->sentinel)
            wd_redis_sentinel_suspect(r->sentinel);
        return;
    }
    if (--r->setup_pending == 0 && r->state == ST_CONNECTING) {
        r->state = ST_READY;
        r->st.connects++;
    }
}

/* ---- connection life ---- */

static void enter_backoff(struct wd_redis_async *r)
{
    uint64_t j;

    r->state = ST_BACKOFF;
    /* xorshift jitter of up to a quarter, as the blocking client: the workers' connections
     * do not reconnect in lockstep */
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    j = r->backoff_ms / 4 ? r->rng % (r->backoff_ms / 4 + 1) : 0;
    r->reconnect_at = now(r) + r->backoff_ms + j;
    r->backoff_ms = r->backoff_ms >= r->backoff_max_ms / 2 ? r->backoff_max_ms : r->backoff_ms * 2;
}

static void on_io(void *arg, unsigned events);

static int send_setup(struct wd_redis_async *r)
{
    const char *argv[3];
    size_t lens[3];
    char db[16];
    int argc = wd_redis__auth_argv(r->username, r->password, argv, lens);

    if (argc) {
        if (redisAsyncCommandArgv(r->ac, on_setup, (void *)"AUTH", argc, argv, lens) != REDIS_OK)
            return WD_EBACKEND;
        r->setup_pending++;
    }
    argc = wd_redis__select_argv(r->database, db, argv, lens);
    if (argc) {
        if (redisAsyncCommandArgv(r->ac, on_setup, (void *)"SELECT", argc, argv, lens) != REDIS_OK)
            return WD_EBACKEND;
        r->setup_pending++;
    }
    if (r->sentinel) { /* the Sentinel client guidelines: a new connection checks ROLE */
        wd_redis__role_argv(argv, lens);
        if (redisAsyncCommandArgv(r->ac, on_setup, (void *)"ROLE", 1, argv, lens) != REDIS_OK)
            return WD_EBACKEND;
        r->setup_pending++;
    }
    return WD_OK;
}

/* A new context (never from inside hiredis). AUTH and SELECT are queued first; requests
 * submitted while connecting are pipelined behind them. */
static void start_connect(struct wd_redis_async *r)
{
    redisAsyncContext *ac;

    r->state = ST_CONNECTING;
    r->healthy = false;
    r->setup_pending = 0;
    r->kill_pending = false;
    r->not_master = false;
    r->connect_deadline = now(r) + r->connect_timeout_ms;
    if (r->sentinel) {
        /* the master now (numeric: no resolving on the loop); none known: back off */
        char maddr[64];
        int mport;
        if (!wd_redis_sentinel_master(r->sentinel, maddr, sizeof maddr, &mport, &r->gen)) {
            set_err(r, "connect: no Redis master known (Sentinel)");
            r->st.connect_failures++;
            enter_backoff(r);
            return;
        }
        if (!r->addr || strcmp(r->addr, maddr) != 0) {
            free(r->addr);
            r->addr = wd_strdup(maddr);
        }
        r->port = mport;
    }
    ac = r->unix_path ? redisAsyncConnectUnix(r->unix_path) : redisAsyncConnect(r->addr, r->port);
    if (!ac || ac->err) {
        /* failed before there was anything to watch: the context must still be freed */
        set_err(r, "connect: %s", ac ? ac->errstr : "cannot allocate a context");
        if (ac)
            redisAsyncFree(ac);
        r->st.connect_failures++;
        enter_backoff(r);
        return;
    }
    r->ac = ac;
    r->mask = 0;
    r->io = r->ev.io_new(r->ev.loop, ac->c.fd, on_io, r);
    /* attach before redisAsyncSetConnectCallback, which adds the write event */
    ac->ev.data = r;
    ac->ev.addRead = h_add_read;
    ac->ev.delRead = h_del_read;
    ac->ev.addWrite = h_add_write;
    ac->ev.delWrite = h_del_write;
    ac->ev.cleanup = h_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (send_setup(r) != WD_OK) {
        set_err(r, "connect: %s", "cannot queue AUTH/SELECT");
        r->kill_pending = true;
    }
    resend_parked(r);
}

/* The context is gone (hiredis freed it, or kill() did): reconnect or back off. */
static void on_lost(struct wd_redis_async *r)
{
    bool was_ready = r->state == ST_READY;

    if (r->state == ST_CLOSED)
        return;
    if (was_ready)
        r->st.disconnects++;
    else
        r->st.connect_failures++;
    if (r->sentinel)
        wd_redis_sentinel_suspect(r->sentinel); /* the master may have moved */
    if (was_ready && r->healthy)
        r->state = ST_IDLE; /* the server closed a connection that worked: the next request
                             * reconnects at once */
    else
        enter_backoff(r);
    if (r->state == ST_IDLE && r->phead)
        start_connect(r); /* requests it took are waiting: now (a failure backs off) */
}

/* Frees the context from the loop: pending callbacks run with NULL (reason in r->err). */
static void kill(struct wd_redis_async *r)
{
    r->kill_pending = false;
    r->healthy = false; /* back off, even if it had answered */
    if (r->ac)
        redisAsyncFree(r->ac); /* callbacks, then cleanup (h_cleanup), then onDisconnect */
    if (r->lost) {
        r->lost = false;
        on_lost(r);
    }
}

static void after_hiredis(struct wd_redis_async *r)
{
    if (r->kill_pending && r->ac)
        kill(r);
    if (r->lost) {
        r->lost = false;
        on_lost(r);
    }
}

static void on_io(void *arg, unsigned events)
{
    struct wd_redis_async *r = arg;
    redisAsyncContext *ac = r->ac;
    enum state st0 = r->state;

    if (!ac)
        return;
    if (events & WD_EV_READ)
        redisAsyncHandleRead(ac);
    /* HandleRead may have freed the context (EOF, error, failed connect): then r->lost is
     * set and ac is dangling */
    if ((events & WD_EV_WRITE) && !r->lost)
        redisAsyncHandleWrite(ac);
    after_hiredis(r);
    /* replies only make the armed time early (tick re-arms): walk the FIFO only when the
     * state changed or nothing is armed */
    if (r->state != st0 || !r->timer_at)
        rearm(r);
    finish(r);
}

static void tick(void *arg)
{
    struct wd_redis_async *r = arg;
    uint64_t t = now(r);

    r->timer_at = 0;
    for (struct req *q = r->head; q; q = q->next)
        if (!q->answered && q->deadline <= t) {
            q->res.rc = WD_ETIMEDOUT;
            snprintf(q->res.err, sizeof q->res.err, "no reply within the deadline");
            r->st.timeouts++;
            push_done(r, q);
        }
    fail_parked(r, past_deadline, t, WD_ETIMEDOUT,
                "connection lost, not reconnected within the deadline");
    if (r->sentinel && r->phead)
        follow_master(r); /* a new master published: connect, re-send */
    if (r->kill_pending && r->ac) {
        kill(r);
    } else if (r->state == ST_BACKOFF && t >= r->reconnect_at) {
        start_connect(r);
    } else if (r->state == ST_CONNECTING && t >= r->connect_deadline) {
        set_err(r, "connect: timed out after %u ms", r->connect_timeout_ms);
        kill(r);
    } else if (r->state == ST_READY && r->head && r->head->sent_at + r->stall_ms <= t) {
        set_err(r, "stalled: no reply for %u ms", r->stall_ms);
        r->st.stalls++;
        kill(r);
    }
    rearm(r);
    finish(r);
}

/* ---- public ---- */

static char *dup_opt(const char *s)
{
    return s ? wd_strdup(s) : NULL;
}

/* host to a numeric address, once, off the loop (hiredis would call getaddrinfo on every
 * connect); IPv4 first, as hiredis does */
static int resolve(const char *host, char *out, size_t cap, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *pick = NULL;
    unsigned char buf[sizeof(struct in6_addr)];

    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
        if (strlen(host) >= cap)
            return WD_EINVAL;
        memcpy(out, host, strlen(host) + 1);
        return WD_OK;
    }
    int e = getaddrinfo(host, NULL, &hints, &res);
    if (e != 0) {
        wd_seterr(err, errcap, "redis_host %s: %s", host, gai_strerror(e));
        return WD_EINVAL;
    }
    for (struct addrinfo *a = res; a && !pick; a = a->ai_next)
        if (a->ai_family == AF_INET)
            pick = a;
    for (struct addrinfo *a = res; a && !pick; a = a->ai_next)
        if (a->ai_family == AF_INET6)
            pick = a;
    e = pick ? getnameinfo(pick->ai_addr, pick->ai_addrlen, out, (socklen_t)cap, NULL, 0,
                           NI_NUMERICHOST)
             : EAI_NONAME;
    freeaddrinfo(res);
    if (e != 0) {
        wd_seterr(err, errcap, "redis_host %s: %s", host, gai_strerror(e));
        return WD_EINVAL;
    }
    return WD_OK;
}

int wd_redis_async_new(const struct wd_redis_async_opts *opts, const struct wd_evops *ev,
                       struct wd_redis_async **out, char *err, size_t errcap)
{
    struct wd_redis_async *r;
    char addr[NI_MAXHOST];

    if (errcap)
        err[0] = '\0';
    if (!out)
        return WD_EINVAL;
    *out = NULL;
    if (!opts || !ev) {
        wd_seterr(err, errcap, "no options");
        return WD_EINVAL;
    }
    struct wd_redis_opts o;
    if (wd_redis__opts_resolve(&opts->conn, &o) != WD_OK) {
        wd_seterr(err, errcap, "redis port or database out of range");
        return WD_EINVAL;
    }
    if (!o.unix_path && !o.sentinel && resolve(o.host, addr, sizeof addr, err, errcap) != WD_OK)
        return WD_EINVAL;
    r = wd_calloc(1, sizeof *r);
    r->ev = *ev;
    r->addr = o.unix_path || o.sentinel ? NULL : wd_strdup(addr);
    r->port = o.port;
    r->sentinel = o.sentinel;
    r->unix_path = dup_opt(o.unix_path);
    r->username = dup_opt(o.username);
    r->password = dup_opt(o.password);
    r->database = o.database;
    r->connect_timeout_ms = o.connect_timeout_ms;
    r->command_timeout_ms = o.command_timeout_ms;
    r->backoff_initial_ms = o.backoff_initial_ms;
    /* The blocking client's 5 s cap would leave calls denied for up to 6.25 s after Redis
     * came back from a long outage. Here a retry holds no thread (the connect is
     * non-blocking and requests wait at most their deadline), so the default cap is short:
     * a returning server is used within 625 ms, whatever the outage's length. */
    r->backoff_max_ms =
        opts->conn.backoff_max_ms ? o.backoff_max_ms : WD_REDIS_ASYNC_BACKOFF_MAX_MS;
    if (r->backoff_max_ms < r->backoff_initial_ms)
        r->backoff_max_ms = r->backoff_initial_ms;
    r->backoff_ms = r->backoff_initial_ms;
    r->max_inflight = opts->max_inflight ? opts->max_inflight : 1024;
    r->stall_ms = opts->stall_ms ? opts->stall_ms : 2 * r->command_timeout_ms;
    r->rng = opts->seed ? opts->seed
                        : (uint64_t)(uintptr_t)r ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ull;
    r->timer = r->ev.timer_new(r->ev.loop, tick, r);
    start_connect(r);
    rearm(r);
    *out = r;
    return WD_OK;
}

static void destroy(struct wd_redis_async *r)
{
    r->free_pending = false;
    if (r->ac) {
        set_err(r, "shutting down");
        redisAsyncFree(r->ac); /* every pending request: NULL, to the done list */
    }
    r->lost = false;
    fail_parked(r, NULL, 0, WD_EBACKEND, "shutting down");
    deliver(r);
    r->ev.timer_free(r->ev.loop, r->timer);
    if (r->password) {
        OPENSSL_cleanse(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->addr);
    free(r->unix_path);
    free(r->username);
    free(r);
}

void wd_redis_async_free(struct wd_redis_async *r)
{
    if (!r || r->closing)
        return;
    r->closing = true;
    r->state = ST_CLOSED;
    if (r->delivering) {
        r->free_pending = true; /* from a completion: finish() does it */
        return;
    }
    destroy(r);
}

/* With Sentinel, before each request: when the master moved (or is no longer known) since this
 * connection was made, the connection goes (its requests fail: redis_on_error, never an answer
 * from a demoted master after the move is known) and a new one starts at once to the new
 * address, without waiting for a backoff meant for the old one. */
static void follow_master(struct wd_redis_async *r)
{
    if (!r->sentinel || r->state == ST_CLOSED ||
        wd_redis_sentinel_generation(r->sentinel) == r->gen)
        return;
    if (r->ac) {
        set_err(r, "the Redis master changed (Sentinel)");
        r->kill_pending = false;
        r->moving = true;
        redisAsyncFree(r->ac); /* pending requests: NULL, parked (their one re-send) or to
                                * the done list; then h_cleanup */
        r->moving = false;
        r->lost = false;
        if (r->state == ST_READY)
            r->st.disconnects++;
    }
    r->backoff_ms = r->backoff_initial_ms;
    start_connect(r);
    if (r->dhead)
        arm(r, 1); /* the failed requests are delivered from the timer, not from here */
}

static int submit(struct wd_redis_async *r, enum kind kind, int argc, const char **argv,
                  const size_t *lens, uint64_t deadline, wd_redis_acl_skip_fn skip, void *ud,
                  size_t max_len, wd_redis_async_cb cb, void *ctx)
{
    struct req *q;
    uint64_t t, want;

    if (!r || !cb)
        return WD_EINVAL;
    follow_master(r);
    if (r->state == ST_IDLE)
        start_connect(r); /* a failure here enters the backoff: refused below */
    /* With Sentinel, no connection now (a backoff: the master died, no master is known) or
     * one to a server that said it is not the master: the request waits, within its
     * deadline, for the next connection (the next master for the latter) instead of being
     * refused; it has been sent nowhere. Without Sentinel the backoff refuses at once. */
    bool hold_it = r->sentinel && r->state != ST_CLOSED &&
                   (r->state == ST_BACKOFF || (r->kill_pending && r->not_master));
    if (!hold_it && (r->state == ST_IDLE || r->state == ST_CLOSED || r->state == ST_BACKOFF ||
                     !r->ac || r->kill_pending)) {
        r->st.rejected_down++;
        return WD_EBACKEND;
    }
    if (r->inflight + r->nparked >= r->max_inflight) {
        r->st.rejected_busy++;
        return WD_EBUSY;
    }
    q = wd_calloc(1, sizeof *q);
    q->r = r;
    q->kind = kind;
    q->cb = cb;
    q->ctx = ctx;
    q->skip = skip;
    q->skip_ud = ud;
    q->max_len = max_len;
    t = now(r);
    q->sent_at = t;
    q->deadline = t + r->command_timeout_ms;
    if (deadline && deadline < q->deadline)
        q->deadline = deadline;
    /* argv, never a format string; formatted here and kept (hiredis copies it into its
     * output buffer) so that a connection lost before the reply can be re-sent */
    int len = redisFormatCommandArgv(&q->cmd, argc, argv, lens);
    if (hold_it && len >= 0) {
        q->cmdlen = (size_t)len;
        q->fresh = true;
        if (r->not_master) {
            q->hold = true;
            q->hold_gen = r->gen;
        }
        park_tail(r, q);
        r->st.submitted++;
        r->st.waited++;
        if (!r->timer_at || now(r) + GEN_POLL_MS < r->timer_at)
            arm(r, now(r) + GEN_POLL_MS);
        return WD_OK;
    }
    if (len < 0 ||
        redisAsyncFormattedCommand(r->ac, on_reply, q, q->cmd, (size_t)len) != REDIS_OK) {
        req_free(q);
        r->st.rejected_down++;
        return WD_EBACKEND; /* answered on the spot: hiredis will never call on_reply */
    }
    q->cmdlen = (size_t)len;
    fifo_append(r, q);
    r->st.submitted++;
    want = q->deadline;
    if (r->state == ST_READY)
        want = min64(want, r->head->sent_at + r->stall_ms);
    if (r->kill_pending)
        want = 1;
    if (!r->timer_at || want < r->timer_at)
        arm(r, want);
    return WD_OK;
}

int wd_redis_async_user_get(struct wd_redis_async *r, const char *key, size_t keylen,
                            uint64_t deadline, wd_redis_async_cb cb, void *ctx)
{
    const char *argv[WD_REDIS__USER_ARGC];
    size_t lens[WD_REDIS__USER_ARGC];

    if (!key && keylen)
        return WD_EINVAL;
    wd_redis__user_argv(key, keylen, argv, lens);
    return submit(r, K_USER, WD_REDIS__USER_ARGC, argv, lens, deadline, NULL, NULL, 0, cb, ctx);
}

int wd_redis_async_acl_get(struct wd_redis_async *r, const char *key, size_t keylen,
                           uint64_t deadline, wd_redis_acl_skip_fn skip, void *ud,
                           wd_redis_async_cb cb, void *ctx)
{
    const char *argv[WD_REDIS__ACL_ARGC];
    size_t lens[WD_REDIS__ACL_ARGC];

    if (!key && keylen)
        return WD_EINVAL;
    wd_redis__acl_argv(key, keylen, argv, lens);
    return submit(r, K_ACL, WD_REDIS__ACL_ARGC, argv, lens, deadline, skip, ud, 0, cb, ctx);
}

int wd_redis_async_command(struct wd_redis_async *r, int argc, const char **argv,
                           const size_t *lens, uint64_t deadline, size_t max_len,
                           wd_redis_async_cb cb, void *ctx)
{
    if (argc < 1 || !argv || !lens)
        return WD_EINVAL;
    return submit(r, K_RAW, argc, argv, lens, deadline, NULL, NULL, max_len, cb, ctx);
}

size_t wd_redis_async_cancel(struct wd_redis_async *r, void *ctx)
{
    size_t n = 0;

    if (!r)
        return 0;
    /* waiting for their reply: forget the caller, keep the place in the FIFO */
    for (struct req *q = r->head; q; q = q->next)
        if (!q->answered && q->ctx == ctx) {
            q->answered = true;
            q->cb = NULL;
            n++;
        }
    /* parked: not in hiredis, nothing else holds them */
    struct req **pq = &r->phead, *plast = NULL;
    while (*pq) {
        struct req *q = *pq;
        if (q->ctx == ctx) {
            *pq = q->pnext;
            r->nparked--;
            n++;
            req_free(q);
            continue;
        }
        plast = q;
        pq = &q->pnext;
    }
    r->ptail = plast;
    /* answered but not yet delivered */
    struct req **pp = &r->dhead, *last = NULL;
    while (*pp) {
        struct req *q = *pp;
        if (q->ctx == ctx && q->cb) {
            *pp = q->dnext;
            q->in_done = false;
            q->cb = NULL;
            n++;
            if (!q->in_redis)
                req_free(q);
            continue;
        }
        last = q;
        pp = &q->dnext;
    }
    r->dtail = last;
    r->st.cancelled += n;
    return n;
}

void wd_redis_async_stats(const struct wd_redis_async *r, struct wd_redis_async_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!r)
        return;
    *out = r->st;
    out->inflight = r->inflight + r->nparked;
    out->ready = r->state == ST_READY;
}

const char *wd_redis_async_last_error(const struct wd_redis_async *r)
{
    return r ? r->err : "";
}
