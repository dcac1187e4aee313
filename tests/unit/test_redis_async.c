/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/store/redis_async.c against a real redis-server (redis_fixture.h), on a
 * real worker loop (server/loop.c through loop_evops) whose clock is a variable: deadlines,
 * the watchdog, the connect timeout and the backoff fire when a test moves the clock, never
 * by waiting. Real I/O is polled with a generous real deadline (POLL_UNTIL), never slept
 * on. The io ops are wrapped to check that hiredis' hooks leave one registration per fd,
 * modified only when the mask changes, and that every io handle is freed exactly once.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "core/wd.h"
#include "server/loop_evops.h"
#include "store/redis_async.h"
#include "store/redis_sentinel.h"

#include "redis_fixture.h"

/* ---- clock, loop, checked io ops ---- */

static uint64_t fake_now;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static struct wd_evops real_ev;
static int ios_live, ios_made, io_same_mask;

struct io_rec {
    void *real;
    unsigned mask;
    bool set;
};

static void *chk_io_new(void *loop, int fd, void (*cb)(void *, unsigned), void *arg)
{
    struct io_rec *rec = calloc(1, sizeof *rec);
    rec->real = real_ev.io_new(loop, fd, cb, arg);
    ios_live++;
    ios_made++;
    return rec;
}

static int chk_io_set(void *loop, void *h, unsigned mask)
{
    struct io_rec *rec = h;
    if (rec->set && rec->mask == mask)
        io_same_mask++; /* a redundant epoll_ctl: the hooks are not idempotent */
    rec->set = true;
    rec->mask = mask;
    return real_ev.io_set(loop, rec->real, mask);
}

static void chk_io_free(void *loop, void *h)
{
    struct io_rec *rec = h;
    real_ev.io_free(loop, rec->real);
    ios_live--;
    free(rec);
}

struct fx {
    struct srv *s;
    struct wd_loop *l;
    struct wd_evops ev;
    struct wd_redis_async *r;
};

static void fx_loop(struct fx *f)
{
    fake_now = 1000000;
    f->l = wd_loop_new(fake_clock, NULL);
    assert_non_null(f->l);
    wd_loop_evops(f->l, &real_ev);
    f->ev = real_ev;
    f->ev.io_new = chk_io_new;
    f->ev.io_set = chk_io_set;
    f->ev.io_free = chk_io_free;
    ios_live = ios_made = io_same_mask = 0;
}

static void run(struct fx *f)
{
    wd_loop_run_once(f->l, 5);
}

/* polls the loop until cond holds; fails the test after 10 s of real time */
#define POLL_UNTIL(f, cond)                                                                        \
    do {                                                                                           \
        uint64_t poll_end_ = mono_ms() + 10000;                                                    \
        while (!(cond)) {                                                                          \
            assert_true(mono_ms() < poll_end_);                                                    \
            run(f);                                                                                \
        }                                                                                          \
    } while (0)

/* moves the test clock and runs the timers that became due */
static void advance(struct fx *f, uint64_t ms)
{
    fake_now += ms;
    wd_loop_run_once(f->l, 0);
}

static struct wd_redis_async_stats stats(struct fx *f)
{
    struct wd_redis_async_stats st;
    wd_redis_async_stats(f->r, &st);
    return st;
}

static void fx_open(struct fx *f, struct wd_redis_async_opts *o)
{
    char err[160];
    if (!o->conn.port && !o->conn.unix_path)
        o->conn.port = f->s->port;
    assert_int_equal(wd_redis_async_new(o, &f->ev, &f->r, err, sizeof err), WD_OK);
}

static void fx_open_ready(struct fx *f, struct wd_redis_async_opts *o)
{
    fx_open(f, o);
    POLL_UNTIL(f, stats(f).ready);
}

static void fx_close(struct fx *f)
{
    wd_redis_async_free(f->r);
    f->r = NULL;
    assert_int_equal(ios_live, 0);
    assert_int_equal(io_same_mask, 0);
    wd_loop_free(f->l);
}

/* ---- completions ---- */

struct call {
    int done; /* times the completion ran: must end at exactly 1 */
    int rc;
    int order;
    bool superuser, has_fields;
    char hash[64];
    size_t nacl;
    char err[128];
    int raw_type;
    long long raw_int;
    char raw[64];
    struct fx *f;
    bool free_client, resubmit;
    struct call *next_call;
};

static int order_seq;

static void on_done(void *ctx, struct wd_redis_async_result *res)
{
    struct call *c = ctx;
    c->done++;
    c->rc = res->rc;
    c->order = order_seq++;
    c->superuser = res->user.is_superuser;
    c->has_fields = res->user.has_fields;
    snprintf(c->hash, sizeof c->hash, "%s", res->user.hash ? res->user.hash : "");
    c->nacl = res->nacl;
    snprintf(c->err, sizeof c->err, "%s", res->err);
    c->raw_type = (int)res->raw.type;
    c->raw_int = res->raw.integer;
    snprintf(c->raw, sizeof c->raw, "%s", res->raw.str ? res->raw.str : "");
    if (c->free_client) {
        wd_redis_async_free(c->f->r);
        c->f->r = NULL;
    }
    if (c->resubmit)
        assert_int_equal(
            wd_redis_async_user_get(c->f->r, "mqtt_user:alice", 15, 0, on_done, c->next_call),
            WD_OK);
}

static int user_get(struct fx *f, const char *key, struct call *c)
{
    c->f = f;
    return wd_redis_async_user_get(f->r, key, strlen(key), 0, on_done, c);
}

static void redis_cmd(const struct srv *s, const char *fmt, ...)
{
    redisContext *c = admin(s);
    va_list ap;
    assert_non_null(c);
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(c);
}

/* ---- groups ---- */

static int group_setup(void **state)
{
    atexit(kill_all_at_exit);
    signal(SIGPIPE, SIG_IGN);
    struct srv *s = srv_start(NULL);
    *state = s;
    if (!s)
        return -1;
    redis_cmd(s, "HSET mqtt_user:alice password_hash h1 salt s1 is_superuser 1");
    redis_cmd(s, "SET mqtt_user:str x");
    redis_cmd(s, "HSET mqtt_acl:alice t/1 subscribe t/2 publish bad pub");
    return 0;
}

static int group_teardown(void **state)
{
    srv_stop(*state);
    return 0;
}

/* a stopped, killed or restarted server must be running again for the next test */
static void srv_restore(struct srv *s)
{
    if (s->pid > 0)
        kill(s->pid, SIGCONT);
    if (s->pid <= 0 || !srv_answers(s)) {
        srv_kill(s);
        assert_true(srv_spawn(s));
    }
    redis_cmd(s, "CLIENT UNPAUSE"); /* a failed retry_ test leaves its CLIENT PAUSE */
    redis_cmd(s, "HSET mqtt_user:alice password_hash h1 salt s1 is_superuser 1");
    redis_cmd(s, "SET mqtt_user:str x");
    redis_cmd(s, "HSET mqtt_acl:alice t/1 subscribe t/2 publish bad pub");
}

static struct fx fx_of(void **state)
{
    struct fx f = {.s = *state};
    srv_restore(f.s);
    fx_loop(&f);
    return f;
}

/* ---- tests ---- */

static void lookups_answer_users_acls_and_not_found(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    struct call a = {0}, b = {0}, acl = {0};

    fx_open_ready(&f, &o);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &a), WD_OK);
    assert_int_equal(user_get(&f, "mqtt_user:nobody", &b), WD_OK);
    acl.f = &f;
    assert_int_equal(
        wd_redis_async_acl_get(f.r, "mqtt_acl:alice", 14, 0, NULL, NULL, on_done, &acl), WD_OK);
    assert_int_equal(a.done, 0); /* never from inside the submit */
    POLL_UNTIL(&f, acl.done);
    assert_int_equal(a.rc, WD_OK);
    assert_string_equal(a.hash, "h1");
    assert_true(a.superuser);
    assert_int_equal(b.rc, WD_ENOENT);
    assert_false(b.has_fields);
    assert_int_equal(acl.rc, WD_OK);
    assert_int_equal(acl.nacl, 2);
    assert_true(a.order < b.order && b.order < acl.order);
    fx_close(&f);
    assert_int_equal(a.done + b.done + acl.done, 3);
}

/* Any command, its reply as data: a bulk string, nil, an integer, a status, an error reply
 * (with its text, as a NOSCRIPT needs) and a string over the caller's limit. */
static void any_command_gets_its_reply_as_data(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    struct call set = {0}, get = {0}, nil = {0}, del = {0}, err = {0}, big = {0};
    const char *a_set[5] = {"SET", "raw:k", "v\r\n1", "PX", "60000"};
    size_t l_set[5] = {3, 5, 4, 2, 5};
    const char *a_get[2] = {"GET", "raw:k"};
    size_t l_get[2] = {3, 5};
    const char *a_nil[2] = {"GET", "raw:none"};
    size_t l_nil[2] = {3, 8};
    const char *a_del[2] = {"DEL", "raw:k"};
    size_t l_del[2] = {3, 5};
    const char *a_err[3] = {"EVALSHA", "0000000000000000000000000000000000000000", "0"};
    size_t l_err[3] = {7, 40, 1};

    fx_open_ready(&f, &o);
    assert_int_equal(wd_redis_async_command(f.r, 5, a_set, l_set, 0, 0, on_done, &set), WD_OK);
    assert_int_equal(wd_redis_async_command(f.r, 2, a_get, l_get, 0, 16, on_done, &get), WD_OK);
    assert_int_equal(wd_redis_async_command(f.r, 2, a_get, l_get, 0, 3, on_done, &big), WD_OK);
    assert_int_equal(wd_redis_async_command(f.r, 2, a_nil, l_nil, 0, 0, on_done, &nil), WD_OK);
    assert_int_equal(wd_redis_async_command(f.r, 2, a_del, l_del, 0, 0, on_done, &del), WD_OK);
    assert_int_equal(wd_redis_async_command(f.r, 3, a_err, l_err, 0, 0, on_done, &err), WD_OK);
    assert_int_equal(wd_redis_async_command(f.r, 0, a_get, l_get, 0, 0, on_done, &err), WD_EINVAL);
    POLL_UNTIL(&f, err.done);
    assert_int_equal(set.rc, WD_OK);
    assert_int_equal(set.raw_type, WD_REDIS_RAW_STATUS);
    assert_string_equal(set.raw, "OK");
    assert_int_equal(get.rc, WD_OK);
    assert_int_equal(get.raw_type, WD_REDIS_RAW_STRING);
    assert_string_equal(get.raw, "v\r\n1");
    assert_int_equal(big.rc, WD_ETOOBIG);
    assert_string_equal(big.raw, "");
    assert_int_equal(nil.rc, WD_OK);
    assert_int_equal(nil.raw_type, WD_REDIS_RAW_NIL);
    assert_int_equal(del.raw_type, WD_REDIS_RAW_INTEGER);
    assert_true(del.raw_int == 1);
    assert_int_equal(err.rc, WD_EBACKEND);
    assert_int_equal(err.raw_type, WD_REDIS_RAW_ERROR);
    assert_true(strncmp(err.raw, "NOSCRIPT", 8) == 0);
    assert_true(set.order < get.order && get.order < err.order);
    fx_close(&f);
}

#define NPIPE 1000

static void thousand_concurrent_requests_are_pipelined_on_one_connection_in_order(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {.max_inflight = NPIPE};
    redisContext *adm = admin(f.s);
    static struct call calls[NPIPE];
    char key[32];

    for (int i = 0; i < NPIPE; i++) {
        freeReplyObject(redisCommand(adm, "HSET mqtt_user:p%d password_hash h%d", i, i));
    }
    fx_open_ready(&f, &o);
    memset(calls, 0, sizeof calls);
    order_seq = 0;
    for (int i = 0; i < NPIPE; i++) {
        snprintf(key, sizeof key, "mqtt_user:p%d", i);
        assert_int_equal(user_get(&f, key, &calls[i]), WD_OK);
    }
    assert_int_equal(stats(&f).inflight, NPIPE);
    POLL_UNTIL(&f, calls[NPIPE - 1].done);
    for (int i = 0; i < NPIPE; i++) {
        char want[16];
        snprintf(want, sizeof want, "h%d", i);
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].rc, WD_OK);
        assert_int_equal(calls[i].order, i);
        assert_string_equal(calls[i].hash, want); /* each reply went to its own request */
    }
    struct wd_redis_async_stats st = stats(&f);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.replied, NPIPE);
    assert_int_equal(st.inflight, 0);
    /* one connection at the server: ours plus this admin one */
    redisReply *rep = redisCommand(adm, "INFO clients");
    assert_non_null(strstr(rep->str, "connected_clients:2\r\n"));
    freeReplyObject(rep);
    redisFree(adm);
    fx_close(&f);
}

/* Redis killed with requests in flight (and, with big keys, bytes still to write: the
 * hang-up is readable and writable in one event, the read frees the context). The requests
 * wait for a new connection to be re-sent on (retry_*_resent tests below) until their
 * deadline, then fail, each exactly once. */
static void killed_redis_fails_every_pending_request_exactly_once(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    static struct call calls[200];
    size_t biglen = 64 * 1024;
    char *big = malloc(biglen);

    memset(calls, 0, sizeof calls);
    memset(big, 'k', biglen);
    fx_open_ready(&f, &o);
    kill(f.s->pid, SIGSTOP);
    for (int i = 0; i < 200; i++) {
        calls[i].f = &f;
        assert_int_equal(wd_redis_async_user_get(f.r, big, biglen, 0, on_done, &calls[i]), WD_OK);
    }
    for (int i = 0; i < 20; i++)
        run(&f); /* writes what the socket takes; the rest stays queued */
    srv_kill(f.s);
    POLL_UNTIL(&f, stats(&f).retried == 200);
    assert_false(stats(&f).ready);
    uint64_t refused = stats(&f).connect_failures;
    advance(&f, 499); /* past the backoff: a reconnect, refused */
    POLL_UNTIL(&f, stats(&f).connect_failures > refused);
    for (int i = 0; i < 200; i++)
        assert_int_equal(calls[i].done, 0);
    advance(&f, 1); /* the command timeout, 500 ms */
    for (int i = 0; i < 200; i++) {
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].rc, WD_ETIMEDOUT);
    }
    for (int i = 0; i < 10; i++)
        advance(&f, 1);
    for (int i = 0; i < 200; i++)
        assert_int_equal(calls[i].done, 1);
    struct wd_redis_async_stats st = stats(&f);
    assert_int_equal(st.timeouts, 200);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.inflight, 0);
    assert_false(st.ready);
    free(big);
    fx_close(&f);
}

/* ---- requests lost with their connection: re-sent once ---- */

static bool server_holds_a_blocked_client(redisContext *adm)
{
    redisReply *rep = redisCommand(adm, "INFO clients");
    bool yes = rep && rep->type == REDIS_REPLY_STRING && strstr(rep->str, "blocked_clients:1\r\n");
    freeReplyObject(rep);
    return yes;
}

static long long admin_int(redisContext *adm, const char *cmd)
{
    redisReply *rep = redisCommand(adm, cmd);
    assert_non_null(rep);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    return v;
}

static void admin_ok(redisContext *adm, const char *cmd)
{
    redisReply *rep = redisCommand(adm, cmd);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
}

#define NRS 20

/* The server closes the connection (CLIENT KILL: an operator, a failover, a proxy) with
 * requests in flight that it never answered: each is sent again, once, on a new connection,
 * in its order, and gets its own reply. CLIENT PAUSE WRITE holds the pipeline at its first
 * command (a SET) with nothing run, so the kill finds every request unanswered; the pause
 * holds the re-sent SET too until CLIENT UNPAUSE. The GET behind the SET reads what it
 * wrote: the order of the pipeline survives the re-send. */
static void retry_requests_lost_with_a_killed_connection_are_resent_in_order(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    redisContext *adm = admin(f.s);
    static struct call calls[NRS];
    struct call warm = {0}, set = {0}, get = {0};
    const char *a_set[3] = {"SET", "retry:k", "v2"};
    size_t l_set[3] = {3, 7, 2};
    const char *a_get[2] = {"GET", "retry:k"};
    size_t l_get[2] = {3, 7};
    char key[32];

    assert_non_null(adm);
    for (int i = 0; i < NRS; i++)
        freeReplyObject(redisCommand(adm, "HSET mqtt_user:r%d password_hash h%d", i, i));
    freeReplyObject(redisCommand(adm, "SET retry:k v1"));
    memset(calls, 0, sizeof calls);
    fx_open_ready(&f, &o);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &warm), WD_OK);
    POLL_UNTIL(&f, warm.done); /* a connection that has answered */

    admin_ok(adm, "CLIENT PAUSE 20000 WRITE");
    order_seq = 0;
    assert_int_equal(wd_redis_async_command(f.r, 3, a_set, l_set, 0, 0, on_done, &set), WD_OK);
    for (int i = 0; i < NRS; i++) {
        snprintf(key, sizeof key, "mqtt_user:r%d", i);
        assert_int_equal(user_get(&f, key, &calls[i]), WD_OK);
    }
    assert_int_equal(wd_redis_async_command(f.r, 2, a_get, l_get, 0, 16, on_done, &get), WD_OK);
    POLL_UNTIL(&f, server_holds_a_blocked_client(adm));
    assert_int_equal(admin_int(adm, "CLIENT KILL TYPE normal SKIPME yes"), 1);
    /* re-sent on a new connection at once (the lost one had answered), held again */
    POLL_UNTIL(&f, stats(&f).retried == NRS + 2 && stats(&f).connects == 2 &&
                       server_holds_a_blocked_client(adm));
    assert_int_equal(set.done + get.done, 0);
    assert_int_equal(stats(&f).inflight, NRS + 2);
    admin_ok(adm, "CLIENT UNPAUSE");
    POLL_UNTIL(&f, get.done);
    assert_int_equal(set.rc, WD_OK);
    assert_string_equal(set.raw, "OK");
    for (int i = 0; i < NRS; i++) {
        char want[16];
        snprintf(want, sizeof want, "h%d", i);
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].rc, WD_OK);
        assert_string_equal(calls[i].hash, want); /* its own reply */
        assert_int_equal(calls[i].order, i + 1);
    }
    assert_int_equal(get.rc, WD_OK);
    assert_string_equal(get.raw, "v2"); /* after the SET, as sent */
    assert_int_equal(get.order, NRS + 1);
    struct wd_redis_async_stats st = stats(&f);
    assert_int_equal(st.retried, NRS + 2);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.disconnects, 1);
    assert_int_equal(st.inflight, 0);
    redisFree(adm);
    fx_close(&f);
    assert_int_equal(set.done + get.done, 2);
}

/* A request is re-sent once: lost a second time, it fails (once), and what comes after
 * gets its own replies. */
static void retry_a_request_lost_twice_fails(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    redisContext *adm = admin(f.s);
    struct call warm = {0}, set = {0}, calls[5] = {{0}}, after = {0};
    const char *a_set[3] = {"SET", "retry:k", "v3"};
    size_t l_set[3] = {3, 7, 2};

    assert_non_null(adm);
    fx_open_ready(&f, &o);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &warm), WD_OK);
    POLL_UNTIL(&f, warm.done);
    admin_ok(adm, "CLIENT PAUSE 20000 WRITE");
    assert_int_equal(wd_redis_async_command(f.r, 3, a_set, l_set, 0, 0, on_done, &set), WD_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(user_get(&f, "mqtt_user:alice", &calls[i]), WD_OK);
    POLL_UNTIL(&f, server_holds_a_blocked_client(adm));
    assert_int_equal(admin_int(adm, "CLIENT KILL TYPE normal SKIPME yes"), 1);
    POLL_UNTIL(&f, stats(&f).retried == 6 && stats(&f).connects == 2 &&
                       server_holds_a_blocked_client(adm));
    assert_int_equal(admin_int(adm, "CLIENT KILL TYPE normal SKIPME yes"), 1);
    POLL_UNTIL(&f, calls[4].done);
    assert_int_equal(set.done, 1);
    assert_int_equal(set.rc, WD_EBACKEND);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].rc, WD_EBACKEND);
    }
    assert_int_equal(stats(&f).retried, 6);
    assert_int_equal(stats(&f).failed, 6);
    admin_ok(adm, "CLIENT UNPAUSE");
    /* the second connection had not answered: a backoff, then a new one */
    advance(&f, 125);
    POLL_UNTIL(&f, stats(&f).ready);
    assert_int_equal(user_get(&f, "mqtt_user:nobody", &after), WD_OK);
    POLL_UNTIL(&f, after.done);
    assert_int_equal(after.rc, WD_ENOENT);
    assert_int_equal(stats(&f).retried, 6);
    redisFree(adm);
    fx_close(&f);
    for (int i = 0; i < 5; i++)
        assert_int_equal(calls[i].done, 1);
}

/* The attack on the re-send: someone who can make Redis drop warden's connection (CLIENT
 * KILL, a timeout, an output-buffer limit) with a pipeline in flight must never get a reply
 * delivered to another request: a user lookup answered with another user's hash is a login
 * with another's password. On a server with a password and a database: the new connection
 * is AUTHed and SELECTed before the re-sent requests (none gets NOAUTH or the wrong
 * database), a request answered by its deadline and one cancelled before the loss are not
 * re-sent (their place in the pipeline goes with the old connection), and every other
 * request gets its own user's hash, in order. */
static void retry_never_gives_a_reply_to_another_request(void **state)
{
    (void)state;
    struct srv *s = srv_start("s3cret pass");
    struct fx f = {.s = s};
    struct wd_redis_async_opts o = {.conn.password = "s3cret pass", .conn.database = 2};
    static struct call calls[NRS];
    struct call warm = {0}, set = {0}, gone = {0}, after = {0};
    const char *a_set[3] = {"SET", "retry:k", "v"};
    size_t l_set[3] = {3, 7, 1};
    char key[32];

    assert_non_null(s);
    redisContext *adm = admin(s);
    assert_non_null(adm);
    admin_ok(adm, "SELECT 2");
    for (int i = 0; i < NRS; i++)
        freeReplyObject(redisCommand(adm, "HSET mqtt_user:k%d password_hash own-%d", i, i));
    memset(calls, 0, sizeof calls);
    fx_loop(&f);
    fx_open_ready(&f, &o);
    assert_int_equal(user_get(&f, "mqtt_user:k0", &warm), WD_OK);
    POLL_UNTIL(&f, warm.done);
    assert_string_equal(warm.hash, "own-0");

    admin_ok(adm, "CLIENT PAUSE 20000 WRITE");
    order_seq = 0;
    assert_int_equal(wd_redis_async_command(f.r, 3, a_set, l_set, 0, 0, on_done, &set), WD_OK);
    for (int i = 0; i < NRS; i++) {
        snprintf(key, sizeof key, "mqtt_user:k%d", i);
        calls[i].f = &f;
        /* k3: a deadline that passes before the loss; k5: its caller goes away */
        uint64_t deadline = i == 3 ? fake_now + 100 : 0;
        void *ctx = i == 5 ? (void *)&gone : (void *)&calls[i];
        assert_int_equal(
            wd_redis_async_user_get(f.r, key, strlen(key), deadline, on_done, ctx), WD_OK);
    }
    POLL_UNTIL(&f, server_holds_a_blocked_client(adm));
    advance(&f, 100);
    assert_int_equal(calls[3].done, 1);
    assert_int_equal(calls[3].rc, WD_ETIMEDOUT);
    assert_int_equal(wd_redis_async_cancel(f.r, &gone), 1);
    assert_int_equal(admin_int(adm, "CLIENT KILL TYPE normal SKIPME yes"), 1);
    /* the SET and the 18 others are re-sent behind AUTH and SELECT, held by the pause */
    POLL_UNTIL(&f, stats(&f).retried == NRS - 1 && stats(&f).connects == 2 &&
                       server_holds_a_blocked_client(adm));
    assert_int_equal(stats(&f).inflight, NRS - 1);
    admin_ok(adm, "CLIENT UNPAUSE");
    POLL_UNTIL(&f, calls[NRS - 1].done);
    assert_int_equal(set.rc, WD_OK);
    int prev = -1;
    for (int i = 0; i < NRS; i++) {
        char want[16];
        if (i == 3 || i == 5)
            continue;
        snprintf(want, sizeof want, "own-%d", i);
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].rc, WD_OK);
        assert_string_equal(calls[i].hash, want);
        assert_true(calls[i].order > prev);
        prev = calls[i].order;
    }
    assert_int_equal(calls[3].done, 1); /* answered once, at its deadline */
    assert_int_equal(calls[5].done + gone.done, 0);
    struct wd_redis_async_stats st = stats(&f);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.disconnects, 1);
    /* the connection goes on with its own replies */
    assert_int_equal(user_get(&f, "mqtt_user:k7", &after), WD_OK);
    POLL_UNTIL(&f, after.done);
    assert_string_equal(after.hash, "own-7");
    redisFree(adm);
    fx_close(&f);
    srv_stop(s);
}

/* Redis restarts with requests in flight: they wait (the reconnect at once is refused, then
 * the backoff) and the restarted server answers them, each with its own reply. */
static void
retry_requests_in_flight_when_redis_restarts_are_answered_by_the_new_server(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    static struct call calls[NRS];
    struct call warm = {0};
    char key[32];

    memset(calls, 0, sizeof calls);
    fx_open_ready(&f, &o);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &warm), WD_OK);
    POLL_UNTIL(&f, warm.done);
    kill(f.s->pid, SIGSTOP);
    order_seq = 0;
    for (int i = 0; i < NRS; i++) {
        snprintf(key, sizeof key, "mqtt_user:r%d", i);
        assert_int_equal(user_get(&f, key, &calls[i]), WD_OK);
    }
    for (int i = 0; i < 10; i++)
        run(&f);
    srv_kill(f.s);
    POLL_UNTIL(&f, stats(&f).retried == NRS && stats(&f).connect_failures == 1);
    assert_true(srv_spawn(f.s));
    redisContext *adm = admin(f.s);
    for (int i = 0; i < NRS; i++)
        freeReplyObject(redisCommand(adm, "HSET mqtt_user:r%d password_hash n%d", i, i));
    redisFree(adm);
    for (int i = 0; i < NRS; i++)
        assert_int_equal(calls[i].done, 0);
    advance(&f, 125); /* the backoff: 100 ms and up to a quarter */
    POLL_UNTIL(&f, calls[NRS - 1].done);
    for (int i = 0; i < NRS; i++) {
        char want[16];
        snprintf(want, sizeof want, "n%d", i);
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].rc, WD_OK);
        assert_string_equal(calls[i].hash, want);
        assert_int_equal(calls[i].order, i);
    }
    assert_int_equal(stats(&f).retried, NRS);
    assert_int_equal(stats(&f).failed, 0);
    fx_close(&f);
}

/* Opens a client, stops the server (SIGSTOP), submits a request of a then of b[i], thrice */
static void stopped_server_holds_a_and_b(struct fx *f, struct wd_redis_async_opts *o,
                                         struct call *a, struct call b[3])
{
    fx_open_ready(f, o);
    kill(f->s->pid, SIGSTOP);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(user_get(f, "mqtt_user:alice", a), WD_OK);
        assert_int_equal(user_get(f, "mqtt_user:alice", &b[i]), WD_OK);
    }
}

/* Requests waiting for a new connection can be cancelled, and freeing the client answers the
 * others once. */
static void retry_waiting_requests_can_be_cancelled_or_shut_down(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    struct call a = {0}, b[3] = {{0}};

    stopped_server_holds_a_and_b(&f, &o, &a, b);
    for (int i = 0; i < 10; i++)
        run(&f);
    srv_kill(f.s);
    POLL_UNTIL(&f, stats(&f).retried == 6);
    assert_int_equal(stats(&f).inflight, 6);
    assert_int_equal(wd_redis_async_cancel(f.r, &a), 3);
    assert_int_equal(stats(&f).inflight, 3);
    fx_close(&f);
    assert_int_equal(a.done, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b[i].done, 1);
        assert_int_equal(b[i].rc, WD_EBACKEND);
        assert_non_null(strstr(b[i].err, "shutting down"));
    }
}

static void restarted_redis_is_reconnected_after_a_jittered_backoff(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {.conn.backoff_initial_ms = 1000, .conn.backoff_max_ms = 8000};
    struct call c = {0}, d = {0};

    fx_open_ready(&f, &o);
    srv_kill(f.s);
    /* the closed connection had not answered: straight to the backoff */
    POLL_UNTIL(&f, !stats(&f).ready && user_get(&f, "mqtt_user:alice", &c) == WD_EBACKEND);
    assert_int_equal(c.done, 0); /* refused on the spot: no completion */
    assert_true(stats(&f).rejected_down >= 1);
    assert_true(srv_spawn(f.s));
    redis_cmd(f.s, "HSET mqtt_user:alice password_hash h1");
    advance(&f, 999); /* initial backoff 1000 ms, plus up to a quarter of jitter */
    for (int i = 0; i < 10; i++)
        run(&f);
    assert_false(stats(&f).ready);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &c), WD_EBACKEND);
    advance(&f, 251);
    POLL_UNTIL(&f, stats(&f).ready);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &d), WD_OK);
    POLL_UNTIL(&f, d.done);
    assert_int_equal(d.rc, WD_OK);
    assert_string_equal(d.hash, "h1");
    assert_int_equal(stats(&f).connects, 2);

    /* now a server that answered goes away (a restart): no connection until the next
     * request, which reconnects at once and is answered: no backoff, no failed request */
    srv_kill(f.s);
    POLL_UNTIL(&f, stats(&f).disconnects == 1);
    assert_true(srv_spawn(f.s));
    redis_cmd(f.s, "HSET mqtt_user:alice password_hash h2");
    for (int i = 0; i < 10; i++)
        run(&f);
    assert_int_equal(stats(&f).connects, 2);
    struct call e = {0};
    assert_int_equal(user_get(&f, "mqtt_user:alice", &e), WD_OK);
    POLL_UNTIL(&f, e.done);
    assert_int_equal(e.rc, WD_OK);
    assert_string_equal(e.hash, "h2");
    assert_int_equal(stats(&f).connects, 3);
    fx_close(&f);
}

/* Redis down for long (issue 10, fault injection: recovery within a second of its return):
 * with the default options the client retries at least every 625 ms (its cap, 500 ms, plus
 * a quarter of jitter) however long the outage, so it is back within that of the server's
 * return. The blocking client's 5 s cap, kept before, left every call denied for up to
 * 6.25 s after Redis came back. */
static void a_long_outage_is_retried_at_least_every_625_ms(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    struct call c = {0}, d = {0};

    fx_open_ready(&f, &o);
    srv_kill(f.s);
    POLL_UNTIL(&f, !stats(&f).ready && user_get(&f, "mqtt_user:alice", &c) == WD_EBACKEND);
    for (int i = 0; i < 20; i++) { /* 12.5 s of outage on the test clock */
        uint64_t n = stats(&f).connect_failures;
        advance(&f, 625);
        POLL_UNTIL(&f, stats(&f).connect_failures > n);
    }
    assert_true(srv_spawn(f.s));
    redis_cmd(f.s, "HSET mqtt_user:alice password_hash h1");
    advance(&f, 625);
    POLL_UNTIL(&f, stats(&f).ready);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &d), WD_OK);
    POLL_UNTIL(&f, d.done);
    assert_int_equal(d.rc, WD_OK);
    fx_close(&f);
}

static void paused_redis_times_out_at_the_deadline_and_the_watchdog_reconnects(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {.conn.command_timeout_ms = 500, .stall_ms = 2000};
    struct call calls[10] = {{0}}, after = {0}, early = {0};

    fx_open_ready(&f, &o);
    kill(f.s->pid, SIGSTOP);
    for (int i = 0; i < 10; i++)
        assert_int_equal(user_get(&f, "mqtt_user:alice", &calls[i]), WD_OK);
    /* a caller with an earlier deadline of its own */
    early.f = &f;
    assert_int_equal(
        wd_redis_async_user_get(f.r, "mqtt_user:alice", 15, fake_now + 100, on_done, &early),
        WD_OK);
    for (int i = 0; i < 10; i++)
        run(&f);
    assert_int_equal(calls[0].done, 0);
    advance(&f, 100);
    assert_int_equal(early.done, 1);
    assert_int_equal(early.rc, WD_ETIMEDOUT);
    advance(&f, 399);
    assert_int_equal(calls[0].done, 0);
    advance(&f, 1);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].rc, WD_ETIMEDOUT);
    }
    assert_int_equal(stats(&f).timeouts, 11);
    assert_int_equal(stats(&f).inflight, 11); /* still in Redis' pipeline */
    advance(&f, 1499);
    assert_int_equal(stats(&f).stalls, 0);
    advance(&f, 1); /* the oldest has waited 2000 ms: free and reconnect */
    assert_int_equal(stats(&f).stalls, 1);
    assert_int_equal(stats(&f).inflight, 0);
    assert_non_null(strstr(wd_redis_async_last_error(f.r), "stalled"));
    kill(f.s->pid, SIGCONT);
    advance(&f, 2000); /* past the backoff */
    POLL_UNTIL(&f, stats(&f).ready);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &after), WD_OK);
    POLL_UNTIL(&f, after.done);
    assert_int_equal(after.rc, WD_OK);
    for (int i = 0; i < 10; i++)
        assert_int_equal(calls[i].done, 1);
    assert_int_equal(stats(&f).late, 0); /* the stalled connection's replies never came */
    fx_close(&f);
}

static void late_replies_after_the_deadline_are_dropped(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {.conn.command_timeout_ms = 500, .stall_ms = 5000};
    struct call calls[5] = {{0}}, next = {0};

    fx_open_ready(&f, &o);
    kill(f.s->pid, SIGSTOP);
    for (int i = 0; i < 5; i++)
        assert_int_equal(user_get(&f, "mqtt_user:alice", &calls[i]), WD_OK);
    advance(&f, 500);
    for (int i = 0; i < 5; i++)
        assert_int_equal(calls[i].rc, WD_ETIMEDOUT);
    kill(f.s->pid, SIGCONT);
    assert_int_equal(user_get(&f, "mqtt_user:nobody", &next), WD_OK);
    POLL_UNTIL(&f, next.done);
    /* the five late replies went nowhere; the next request got its own reply */
    assert_int_equal(next.rc, WD_ENOENT);
    assert_int_equal(stats(&f).late, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(calls[i].done, 1);
    fx_close(&f);
}

static void wrong_password_fails_the_connect_and_backs_off(void **state)
{
    struct srv *s = srv_start("s3cret pass");
    struct fx f = {.s = s};
    struct wd_redis_async_opts o = {.conn.password = "wrong"};
    struct call c = {0};

    assert_non_null(s);
    fx_loop(&f);
    fx_open(&f, &o);
    /* pipelined behind the AUTH: fails, once */
    assert_int_equal(user_get(&f, "mqtt_user:alice", &c), WD_OK);
    POLL_UNTIL(&f, stats(&f).connect_failures == 1);
    POLL_UNTIL(&f, c.done);
    assert_int_equal(c.rc, WD_EBACKEND);
    assert_false(stats(&f).ready);
    assert_non_null(strstr(wd_redis_async_last_error(f.r), "AUTH: WRONGPASS"));
    assert_null(strstr(wd_redis_async_last_error(f.r), "wrong"));
    assert_int_equal(user_get(&f, "mqtt_user:alice", &c), WD_EBACKEND); /* backing off */
    advance(&f, 200);
    POLL_UNTIL(&f, stats(&f).connect_failures == 2);
    assert_int_equal(stats(&f).connects, 0);
    fx_close(&f);

    /* the right one, with SELECT */
    struct fx g = {.s = s};
    struct wd_redis_async_opts p = {.conn.password = "s3cret pass", .conn.database = 3};
    struct call d = {0};
    fx_loop(&g);
    fx_open_ready(&g, &p);
    assert_int_equal(user_get(&g, "mqtt_user:alice", &d), WD_OK);
    POLL_UNTIL(&g, d.done);
    assert_int_equal(d.rc, WD_ENOENT); /* database 3 is empty */
    fx_close(&g);
    srv_stop(s);
}

static void error_replies_fail_only_their_request(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    struct call wt = {0}, ok = {0}, busy = {0}, again = {0};

    fx_open_ready(&f, &o);
    assert_int_equal(user_get(&f, "mqtt_user:str", &wt), WD_OK);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &ok), WD_OK);
    POLL_UNTIL(&f, ok.done);
    assert_int_equal(wt.rc, WD_EBACKEND);
    assert_non_null(strstr(wt.err, "WRONGTYPE"));
    assert_int_equal(ok.rc, WD_OK);

    /* BUSY: a script holds the server past busy-reply-threshold */
    redis_cmd(f.s, "CONFIG SET busy-reply-threshold 50");
    redisContext *blocker = admin(f.s);
    assert_int_equal(redisAppendCommand(blocker, "EVAL %s 0", "while true do end"), REDIS_OK);
    int done = 0;
    while (!done)
        assert_int_equal(redisBufferWrite(blocker, &done), REDIS_OK);
    for (uint64_t end = mono_ms() + 10000;;) {
        memset(&busy, 0, sizeof busy);
        assert_int_equal(user_get(&f, "mqtt_user:alice", &busy), WD_OK);
        POLL_UNTIL(&f, busy.done);
        if (busy.rc == WD_EBACKEND && strstr(busy.err, "BUSY"))
            break;
        assert_true(mono_ms() < end);
    }
    redis_cmd(f.s, "SCRIPT KILL");
    redisFree(blocker);
    assert_true(stats(&f).ready); /* an error reply does not cost the connection */
    /* the script stops at its next check, a moment after SCRIPT KILL answered */
    for (uint64_t end = mono_ms() + 10000;;) {
        memset(&again, 0, sizeof again);
        assert_int_equal(user_get(&f, "mqtt_user:alice", &again), WD_OK);
        POLL_UNTIL(&f, again.done);
        if (again.rc != WD_EBACKEND || !strstr(again.err, "BUSY"))
            break;
        assert_true(mono_ms() < end);
    }
    assert_int_equal(again.rc, WD_OK);
    assert_int_equal(stats(&f).connects, 1);
    fx_close(&f);
}

static void over_the_inflight_cap_requests_fail_fast(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {.max_inflight = 10};
    struct call calls[11] = {{0}};

    fx_open_ready(&f, &o);
    kill(f.s->pid, SIGSTOP);
    for (int i = 0; i < 10; i++)
        assert_int_equal(user_get(&f, "mqtt_user:alice", &calls[i]), WD_OK);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &calls[10]), WD_EBUSY);
    assert_int_equal(stats(&f).rejected_busy, 1);
    kill(f.s->pid, SIGCONT);
    POLL_UNTIL(&f, calls[9].done);
    for (int i = 0; i < 10; i++)
        assert_int_equal(calls[i].rc, WD_OK);
    assert_int_equal(calls[10].done, 0);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &calls[10]), WD_OK);
    POLL_UNTIL(&f, calls[10].done);
    fx_close(&f);
}

static void cancelled_requests_never_complete(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    struct call a = {0}, b[3] = {{0}};

    stopped_server_holds_a_and_b(&f, &o, &a, b);
    assert_int_equal(wd_redis_async_cancel(f.r, &a), 3);
    assert_int_equal(wd_redis_async_cancel(f.r, &a), 0);
    kill(f.s->pid, SIGCONT);
    POLL_UNTIL(&f, b[2].done);
    assert_int_equal(a.done, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(b[i].rc, WD_OK);
    assert_int_equal(stats(&f).late, 3);
    assert_int_equal(stats(&f).cancelled, 3);
    fx_close(&f);
}

static void freeing_the_client_answers_pending_requests_once(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    struct call calls[3] = {{0}};

    fx_open_ready(&f, &o);
    kill(f.s->pid, SIGSTOP);
    for (int i = 0; i < 3; i++)
        assert_int_equal(user_get(&f, "mqtt_user:alice", &calls[i]), WD_OK);
    run(&f);
    fx_close(&f);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].rc, WD_EBACKEND);
        assert_non_null(strstr(calls[i].err, "shutting down"));
    }
    kill(f.s->pid, SIGCONT);
}

static void completions_may_submit_again_or_free_the_client(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {0};
    struct call second = {0}, first = {.resubmit = true, .next_call = &second};
    struct call freer = {.free_client = true}, after = {0};

    fx_open_ready(&f, &o);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &first), WD_OK);
    POLL_UNTIL(&f, second.done);
    assert_int_equal(second.rc, WD_OK);

    kill(f.s->pid, SIGSTOP);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &freer), WD_OK);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &after), WD_OK);
    advance(&f, 500); /* both time out; the first completion frees the client */
    assert_int_equal(freer.done, 1);
    assert_int_equal(after.done, 1);
    assert_null(f.r);
    kill(f.s->pid, SIGCONT);
    assert_int_equal(ios_live, 0);
    wd_loop_free(f.l);
}

static void connects_that_never_finish_time_out(void **state)
{
    /* a listener that never accepts: the kernel completes the handshake, AUTH is never
     * answered, so only the connect timer ends it */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    struct fx f = {.s = *state};

    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(ls, 8), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
    fx_loop(&f);
    struct wd_redis_async_opts o = {
        .conn.port = ntohs(sa.sin_port), .conn.password = "x", .conn.connect_timeout_ms = 1000};
    fx_open(&f, &o);
    for (int i = 0; i < 10; i++)
        run(&f);
    advance(&f, 999);
    assert_int_equal(stats(&f).connect_failures, 0);
    advance(&f, 1);
    assert_int_equal(stats(&f).connect_failures, 1);
    assert_non_null(strstr(wd_redis_async_last_error(f.r), "timed out"));
    fx_close(&f);
    close(ls);
}

static void host_names_are_resolved_once_and_unix_sockets_work(void **state)
{
    struct fx f = fx_of(state);
    struct wd_redis_async_opts o = {.conn.host = "localhost"};
    struct call c = {0}, d = {0};

    fx_open_ready(&f, &o);
    assert_int_equal(user_get(&f, "mqtt_user:alice", &c), WD_OK);
    POLL_UNTIL(&f, c.done);
    assert_int_equal(c.rc, WD_OK);
    fx_close(&f);

    struct fx g = fx_of(state);
    struct wd_redis_async_opts u = {.conn.unix_path = g.s->sock};
    fx_open_ready(&g, &u);
    assert_int_equal(user_get(&g, "mqtt_user:alice", &d), WD_OK);
    POLL_UNTIL(&g, d.done);
    assert_int_equal(d.rc, WD_OK);
    fx_close(&g);
}

static void bad_arguments_are_refused(void **state)
{
    struct fx f = {.s = *state};
    struct wd_redis_async_opts o = {.conn.port = 70000};
    char err[160];

    fx_loop(&f);
    assert_int_equal(wd_redis_async_new(&o, &f.ev, &f.r, err, sizeof err), WD_EINVAL);
    assert_null(f.r);
    assert_int_equal(wd_redis_async_user_get(NULL, "k", 1, 0, on_done, NULL), WD_EINVAL);
    wd_loop_free(f.l);
}

/* ---- Sentinel: the master moves ---- */

static bool info_has(const struct srv *s, const char *section, const char *want)
{
    redisContext *c = admin(s);
    if (!c)
        return false;
    redisReply *r = redisCommand(c, "INFO %s", section);
    bool yes = r && r->type == REDIS_REPLY_STRING && strstr(r->str, want);
    freeReplyObject(r);
    redisFree(c);
    return yes;
}

static bool sentinel_sees_one_replica(const struct srv *st)
{
    redisContext *c = admin(st);
    if (!c)
        return false;
    redisReply *r = redisCommand(c, "SENTINEL replicas m");
    bool yes = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
    freeReplyObject(r);
    redisFree(c);
    return yes;
}

static bool sentinel_failover(const struct srv *st)
{
    redisContext *c = admin(st);
    if (!c)
        return false;
    redisReply *r = redisCommand(c, "SENTINEL FAILOVER m");
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* real-time poll, for the processes (the loop's clock is the test's) */
#define WAIT_REAL(cond, secs)                                                                      \
    do {                                                                                           \
        uint64_t wr_end_ = mono_ms() + (secs)*1000u;                                               \
        while (!(cond)) {                                                                          \
            assert_true(mono_ms() < wr_end_);                                                      \
            sleep_ms(20);                                                                          \
        }                                                                                          \
    } while (0)

/* A real master, its replica and a real redis-sentinel; SENTINEL FAILOVER while requests wait
 * on the old master (paused behind a SET): when the move is seen, they are re-sent once on
 * the new master, each answered with its own reply; none fails. Before: each failed ("the
 * Redis master changed"), calls denied by redis_on_error during every failover. */
static void sentinel_failover_resends_requests_in_flight_on_the_new_master(void **state)
{
    (void)state;
    struct srv *a = srv_start(NULL);
    assert_non_null(a);
    struct srv *b = srv_start_as(NULL, a->port, 0);
    assert_non_null(b);
    WAIT_REAL(info_has(b, "replication", "master_link_status:up"), 30);
    for (int i = 0; i < NRS; i++)
        redis_cmd(a, "HSET mqtt_user:f%d password_hash h%d", i, i);
    redis_cmd(a, "WAIT 1 5000");
    struct srv *st = srv_start_as(NULL, 0, a->port);
    assert_non_null(st);
    WAIT_REAL(sentinel_sees_one_replica(st), 60);

    char addr[32], err[256];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", st->port);
    const char *addrs[] = {addr};
    struct wd_redis_sentinel_opts so = {.addrs = addrs, .naddrs = 1, .master_name = "m"};
    struct wd_redis_sentinel *sen = NULL;
    assert_int_equal(wd_redis_sentinel_start(&so, &sen, err, sizeof err), WD_OK);
    char m[64];
    int mport = 0;
    assert_true(wd_redis_sentinel_master(sen, m, sizeof m, &mport, NULL));
    assert_int_equal(mport, a->port);

    struct fx f = {.s = a};
    fx_loop(&f);
    struct wd_redis_async_opts o = {.conn.sentinel = sen};
    fx_open_ready(&f, &o);
    struct call warm = {0}, set = {0}, last = {0};
    static struct call calls[NRS];
    memset(calls, 0, sizeof calls);
    assert_int_equal(user_get(&f, "mqtt_user:f0", &warm), WD_OK);
    POLL_UNTIL(&f, warm.done);

    redisContext *adm = admin(a);
    assert_non_null(adm);
    admin_ok(adm, "CLIENT PAUSE 60000 WRITE");
    const char *a_set[3] = {"SET", "fo:k", "v"};
    size_t l_set[3] = {3, 4, 1};
    assert_int_equal(wd_redis_async_command(f.r, 3, a_set, l_set, 0, 0, on_done, &set), WD_OK);
    char key[32];
    for (int i = 0; i < NRS; i++) {
        snprintf(key, sizeof key, "mqtt_user:f%d", i);
        assert_int_equal(user_get(&f, key, &calls[i]), WD_OK);
    }
    POLL_UNTIL(&f, server_holds_a_blocked_client(adm));

    /* -NOGOODSLAVE until the sentinel has the replica's own INFO: polled */
    WAIT_REAL(sentinel_failover(st), 60);
    WAIT_REAL(wd_redis_sentinel_master(sen, m, sizeof m, &mport, NULL) && mport == b->port, 60);
    /* the next request sees the move: the connection goes, what it held is re-sent */
    assert_int_equal(user_get(&f, "mqtt_user:f1", &last), WD_OK);
    POLL_UNTIL(&f, last.done);
    assert_int_equal(set.done, 1);
    assert_int_equal(set.rc, WD_OK);
    for (int i = 0; i < NRS; i++) {
        char want[16];
        snprintf(want, sizeof want, "h%d", i);
        POLL_UNTIL(&f, calls[i].done);
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].rc, WD_OK);
        assert_string_equal(calls[i].hash, want); /* its own reply */
    }
    assert_int_equal(last.rc, WD_OK);
    assert_string_equal(last.hash, "h1");
    struct wd_redis_async_stats s1 = stats(&f);
    assert_int_equal(s1.retried, NRS + 1);
    assert_int_equal(s1.failed, 0);
    redisContext *bc = admin(b);
    redisReply *r = redisCommand(bc, "GET fo:k");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING); /* the SET landed on the new master */
    freeReplyObject(r);
    redisFree(bc);

    admin_ok(adm, "CLIENT UNPAUSE");
    redisFree(adm);
    fx_close(&f);
    wd_redis_sentinel_stop(sen);
    srv_stop(st);
    srv_stop(b);
    srv_stop(a);
}

/* The master is killed: requests submitted while its address is refused wait (within their
 * deadline, never sent anywhere) instead of being refused at once, and are sent to the new
 * master as soon as the sentinel names it. Before: each was refused (WD_EBACKEND) at once. */
static void sentinel_requests_during_an_outage_wait_for_the_new_master(void **state)
{
    (void)state;
    struct srv *a = srv_start(NULL);
    assert_non_null(a);
    struct srv *b = srv_start_as(NULL, a->port, 0);
    assert_non_null(b);
    WAIT_REAL(info_has(b, "replication", "master_link_status:up"), 30);
    for (int i = 0; i < NRS; i++)
        redis_cmd(a, "HSET mqtt_user:w%d password_hash h%d", i, i);
    redis_cmd(a, "WAIT 1 5000");
    struct srv *st = srv_start_as(NULL, 0, a->port);
    assert_non_null(st);
    WAIT_REAL(sentinel_sees_one_replica(st), 60);
    char addr[32], err[256];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", st->port);
    const char *addrs[] = {addr};
    struct wd_redis_sentinel_opts so = {.addrs = addrs, .naddrs = 1, .master_name = "m"};
    struct wd_redis_sentinel *sen = NULL;
    assert_int_equal(wd_redis_sentinel_start(&so, &sen, err, sizeof err), WD_OK);

    struct fx f = {.s = a};
    fx_loop(&f);
    struct wd_redis_async_opts o = {.conn.sentinel = sen, .conn.command_timeout_ms = 60000};
    fx_open_ready(&f, &o);
    struct call warm = {0};
    static struct call calls[NRS];
    memset(calls, 0, sizeof calls);
    assert_int_equal(user_get(&f, "mqtt_user:w0", &warm), WD_OK);
    POLL_UNTIL(&f, warm.done);

    srv_kill(a);
    /* the loss is seen; the next connect is refused: a backoff */
    POLL_UNTIL(&f, stats(&f).disconnects == 1);
    struct call probe = {0};
    assert_int_equal(user_get(&f, "mqtt_user:w0", &probe), WD_OK);
    POLL_UNTIL(&f, stats(&f).connect_failures >= 1);
    char key[32];
    for (int i = 0; i < NRS; i++) {
        snprintf(key, sizeof key, "mqtt_user:w%d", i);
        assert_int_equal(user_get(&f, key, &calls[i]), WD_OK);
    }
    assert_int_equal(stats(&f).waited, NRS);
    WAIT_REAL(sentinel_failover(st), 60);
    int mport = 0;
    char m[64];
    WAIT_REAL(wd_redis_sentinel_master(sen, m, sizeof m, &mport, NULL) && mport == b->port, 60);
    uint64_t end = mono_ms() + 10000;
    for (int i = 0; i < NRS; i++)
        while (!calls[i].done) {
            assert_true(mono_ms() < end);
            advance(&f, 20); /* the generation is looked at every 20 ms */
            run(&f);
        }
    for (int i = 0; i < NRS; i++) {
        char want[16];
        snprintf(want, sizeof want, "h%d", i);
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].rc, WD_OK);
        assert_string_equal(calls[i].hash, want);
    }
    /* the request whose connect to the dead master was refused waited too */
    assert_int_equal(probe.done, 1);
    assert_int_equal(probe.rc, WD_OK);
    assert_string_equal(probe.hash, "h0");
    fx_close(&f);
    wd_redis_sentinel_stop(sen);
    srv_stop(st);
    srv_stop(b);
    srv_stop(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_arguments_are_refused),
        cmocka_unit_test(lookups_answer_users_acls_and_not_found),
        cmocka_unit_test(any_command_gets_its_reply_as_data),
        cmocka_unit_test(thousand_concurrent_requests_are_pipelined_on_one_connection_in_order),
        cmocka_unit_test(killed_redis_fails_every_pending_request_exactly_once),
        cmocka_unit_test(retry_requests_lost_with_a_killed_connection_are_resent_in_order),
        cmocka_unit_test(retry_a_request_lost_twice_fails),
        cmocka_unit_test(retry_never_gives_a_reply_to_another_request),
        cmocka_unit_test(
            retry_requests_in_flight_when_redis_restarts_are_answered_by_the_new_server),
        cmocka_unit_test(retry_waiting_requests_can_be_cancelled_or_shut_down),
        cmocka_unit_test(restarted_redis_is_reconnected_after_a_jittered_backoff),
        cmocka_unit_test(a_long_outage_is_retried_at_least_every_625_ms),
        cmocka_unit_test(paused_redis_times_out_at_the_deadline_and_the_watchdog_reconnects),
        cmocka_unit_test(late_replies_after_the_deadline_are_dropped),
        cmocka_unit_test(wrong_password_fails_the_connect_and_backs_off),
        cmocka_unit_test(error_replies_fail_only_their_request),
        cmocka_unit_test(over_the_inflight_cap_requests_fail_fast),
        cmocka_unit_test(cancelled_requests_never_complete),
        cmocka_unit_test(freeing_the_client_answers_pending_requests_once),
        cmocka_unit_test(completions_may_submit_again_or_free_the_client),
        cmocka_unit_test(connects_that_never_finish_time_out),
        cmocka_unit_test(host_names_are_resolved_once_and_unix_sockets_work),
        cmocka_unit_test(sentinel_failover_resends_requests_in_flight_on_the_new_master),
        cmocka_unit_test(sentinel_requests_during_an_outage_wait_for_the_new_master),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
