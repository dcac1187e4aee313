/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_sentinel.c: master discovery and failover following through Redis Sentinel (contract
 * and the guidelines followed in redis_sentinel.h).
 *
 * The thread loops: discover when asked (start, a client's suspicion, a lost subscription, a
 * failed round: then with a backoff of 100 ms doubling to 1 s), keep one subscription to
 * `+switch-master` up, re-check every RECHECK_MS, and sleep in poll(2) on that subscription
 * and on a pipe that wd_redis_sentinel_suspect() and wd_redis_sentinel_stop() write to. Every
 * connection is a blocking hiredis context with the connect and command timeouts of the data
 * connection; exchange() bounds each command and its whole reply (time, bytes, elements), so a
 * dead, slow or hostile sentinel costs the thread a timeout and nobody else anything.
 *
 * Publishing a master: the `changed` callback first (the invalidation stream's cache entries
 * are dropped before any client can reach the new master), then the address under the mutex,
 * then the generation (atomic, read by clients before each request). Dropping one (a replica
 * behind the announced address, one that refuses AUTH or ROLE with the data credentials, no
 * sentinel knows the name) is the same without an address.
 * An address that merely does not answer is kept: the clients fail on it by themselves (their
 * backoff), and the sentinels will announce the new one after the failover.
 */
#include "store/redis_sentinel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/wd.h"
#include "core/clock.h"
#include "store/redis_int.h"

#define CHANNEL "+switch-master"
#define IDLE_PING_MS 1000
#define PONG_WAIT_MS 2000
#define SUSPECT_MIN_MS 100
#define RETRY_MAX_MS 1000
#define ADDR_CAP 64
/* What one reply from a sentinel (or ROLE from the announced master) may be: a sentinel's
 * replies are a few dozen bytes, ROLE's grows with the replicas (about 40 bytes each). hiredis
 * 0.14 has no limit of its own: a `*2147483647` header would make it allocate 16 GiB, a
 * `$2000000000` one buffer 2 GB. */
#define REPLY_MAX_BYTES 65536
#define REPLY_MAX_ELEMENTS 1024
/* A periodic re-check of the master with the sentinels (the Sentinel client guidelines), in
 * case a +switch-master was missed while the subscription looked alive */
#define RECHECK_MS 5000
/* why no master is known, or why the last round failed (a hint included) */
#define WHY_CAP 256

struct wd_redis_sentinel {
    char **host;
    int *port;
    size_t n;
    size_t first; /* the sentinel that answered last: asked first */
    char *name, *user, *pass;
    struct wd_redis_opts data; /* resolved; strings owned below */
    char *duser, *dpass;
    void (*changed)(void *ctx);
    void *ctx;

    int wake[2]; /* 's': suspect, 'x': stop */
    pthread_t thread;
    bool started;
    atomic_bool stopping, suspect;

    pthread_mutex_t mu; /* the published state */
    bool known;
    char addr[ADDR_CAP];
    int mport;
    char why[WHY_CAP];
    atomic_uint_fast64_t gen, failovers, errors, discoveries, switch_msgs;
    atomic_bool known_a;
};

static void set_why(struct wd_redis_sentinel *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_why(struct wd_redis_sentinel *s, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&s->mu);
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&s->mu);
}

/* ---- pure parts ---- */

bool wd_redis_sentinel__switch_parse(const char *msg, size_t len, const char *name, char *host,
                                     size_t cap, int *port)
{
    /* NAME OLDIP OLDPORT NEWIP NEWPORT, single spaces (sentinel.c sentinelEvent's "%s %s %d
     * %s %d"); anything else is not ours to follow */
    const char *f[5];
    size_t fl[5], nf = 0, i = 0;
    *port = 0;
    if (!msg || !name || cap == 0)
        return false;
    while (i < len && nf < 5) {
        size_t j = i;
        while (j < len && msg[j] != ' ')
            j++;
        if (j == i)
            return false;
        f[nf] = msg + i;
        fl[nf++] = j - i;
        i = j + (j < len);
    }
    if (nf != 5 || i < len || (len && msg[len - 1] == ' '))
        return false;
    if (fl[0] != strlen(name) || memcmp(f[0], name, fl[0]) != 0)
        return false;
    return wd_redis_sentinel__addr_parse(f[3], fl[3], f[4], fl[4], host, cap, port);
}

bool wd_redis_sentinel__addr_parse(const char *h, size_t hl, const char *p, size_t pl, char *host,
                                   size_t cap, int *port)
{
    *port = 0;
    if (!h || !p || hl == 0 || hl >= cap || pl == 0 || pl > 5)
        return false;
    int n = 0;
    for (size_t k = 0; k < pl; k++) {
        if (p[k] < '0' || p[k] > '9')
            return false;
        n = n * 10 + (p[k] - '0');
    }
    if (n < 1 || n > 65535)
        return false;
    /* printable ASCII, no space: no NUL cutting the name short, nothing for a log */
    for (size_t k = 0; k < hl; k++)
        if ((unsigned char)h[k] <= ' ' || (unsigned char)h[k] >= 0x7f)
            return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = n;
    return true;
}

/* ---- connections ---- */

/* hiredis' own reply functions, but an array over REPLY_MAX_ELEMENTS is refused (the reader
 * fails with "Out of memory") before anything is allocated for it */
static redisReplyObjectFunctions capped_fn;
static void *(*default_array)(const redisReadTask *, int);
static pthread_once_t capped_once = PTHREAD_ONCE_INIT;

static void *capped_array(const redisReadTask *t, int elements)
{
    if (elements > REPLY_MAX_ELEMENTS)
        return NULL;
    return default_array(t, elements);
}

static void capped_init(void)
{
    redisReader *rd = redisReaderCreate();
    if (!rd)
        abort(); /* no memory at the first connection: nothing sensible to do */
    capped_fn = *rd->fn;
    default_array = capped_fn.createArray;
    capped_fn.createArray = capped_array;
    redisReaderFree(rd);
}

/* One command and its reply on a blocking context, the whole exchange bounded: timeout_ms
 * in all (SO_RCVTIMEO alone bounds each read, and a peer that sends a byte at a time would
 * hold the thread forever), REPLY_MAX_BYTES read, REPLY_MAX_ELEMENTS per array. NULL on
 * failure, the reason in why; the context is then not to be used again. */
static redisReply *exchange(redisContext *c, int argc, const char **argv, const size_t *lens,
                            unsigned timeout_ms, char *why, size_t cap)
{
    int64_t end = wd_clock_mono_ms(&wd_clock_real) + timeout_ms;
    int done = 0;
    size_t got = 0;
    void *rep = NULL;

    if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK) {
        snprintf(why, cap, "%s", c->errstr);
        return NULL;
    }
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            snprintf(why, cap, "%s", c->errstr);
            return NULL;
        }
    for (;;) {
        if (redisGetReplyFromReader(c, &rep) != REDIS_OK) {
            snprintf(why, cap, "%s", c->errstr);
            return NULL;
        }
        if (rep)
            return rep;
        int64_t left = end - wd_clock_mono_ms(&wd_clock_real);
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int pr = left > 0 ? poll(&pf, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            snprintf(why, cap, "no whole reply within %u ms", timeout_ms);
            return NULL;
        }
        size_t before = c->reader->len;
        if (redisBufferRead(c) != REDIS_OK) {
            snprintf(why, cap, "%s", c->errstr);
            return NULL;
        }
        got += c->reader->len - before;
        if (got > REPLY_MAX_BYTES) {
            snprintf(why, cap, "reply over %d bytes", REPLY_MAX_BYTES);
            return NULL;
        }
    }
}

/* A blocking context to host:port with the timeouts, AUTH'd with user/pass (NULL: none).
 * NULL on failure, the reason in why; *refused (may be NULL) is set when the server answered
 * AUTH with an error (it is there, and says no: WRONGPASS, ...). */
static redisContext *dial(const struct wd_redis_sentinel *s, const char *host, int port,
                          const char *user, const char *pass, bool *refused, char *why, size_t cap)
{
    redisContext *c =
        redisConnectWithTimeout(host, port, wd_redis__ms_tv(s->data.connect_timeout_ms));
    if (!c || c->err) {
        snprintf(why, cap, "%s", c ? c->errstr : "no memory");
        goto fail;
    }
    if (redisSetTimeout(c, wd_redis__ms_tv(s->data.command_timeout_ms)) != REDIS_OK) {
        snprintf(why, cap, "set timeout: %s", c->errstr);
        goto fail;
    }
    pthread_once(&capped_once, capped_init);
    c->reader->fn = &capped_fn;
    const char *argv[3];
    size_t lens[3];
    int argc = wd_redis__auth_argv(user, pass, argv, lens);
    if (argc) {
        char e[120];
        redisReply *r = exchange(c, argc, argv, lens, s->data.command_timeout_ms, e, sizeof e);
        bool ok = r && wd_redis__setup_reply_ok(r, e, sizeof e);
        if (r)
            freeReplyObject(r);
        if (!ok) {
            snprintf(why, cap, "AUTH: %s", e);
            if (refused && r)
                *refused = true;
            goto fail;
        }
    }
    return c;
fail:
    if (c)
        redisFree(c);
    return NULL;
}

/* host (a name or an address) to a numeric address, IPv4 first as hiredis does */
static bool numeric(const char *host, char *out, size_t cap)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
        snprintf(out, cap, "%s", host);
        return strlen(host) < cap;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *pick = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return false;
    for (struct addrinfo *a = res; a && !pick; a = a->ai_next)
        if (a->ai_family == AF_INET)
            pick = a;
    for (struct addrinfo *a = res; a && !pick; a = a->ai_next)
        if (a->ai_family == AF_INET6)
            pick = a;
    int e = pick ? getnameinfo(pick->ai_addr, pick->ai_addrlen, out, (socklen_t)cap, NULL, 0,
                               NI_NUMERICHOST)
                 : EAI_NONAME;
    freeaddrinfo(res);
    return e == 0;
}

/* ROLE_REFUSED: the server answered, but AUTH or ROLE with error (WRONGPASS, NOPERM): the
 * credentials or the ACL of the data user do not fit it. ROLE_FAILED: no answer at all. */
enum role { ROLE_MASTER, ROLE_REPLICA, ROLE_REFUSED, ROLE_FAILED };

/* ROLE at addr:port with the data credentials. */
static enum role ask_role(struct wd_redis_sentinel *s, const char *addr, int port, char *why,
                          size_t cap)
{
    bool refused = false;
    redisContext *c = dial(s, addr, port, s->data.username, s->data.password, &refused, why, cap);
    if (!c)
        return refused ? ROLE_REFUSED : ROLE_FAILED;
    const char *argv[1];
    size_t lens[1];
    wd_redis__role_argv(argv, lens);
    char e0[120];
    redisReply *r = exchange(c, 1, argv, lens, s->data.command_timeout_ms, e0, sizeof e0);
    enum role out = ROLE_FAILED;
    if (!r) {
        snprintf(why, cap, "ROLE: %s", e0);
    } else {
        char e[120];
        int rr = wd_redis__role_from_reply(r, e, sizeof e);
        if (rr == WD_OK)
            out = ROLE_MASTER;
        else if (rr == WD_ENOENT)
            out = ROLE_REPLICA;
        else
            out = ROLE_REFUSED;
        snprintf(why, cap, "%s", e);
        freeReplyObject(r);
    }
    redisFree(c);
    return out;
}

/* ---- the published state ---- */

static void publish(struct wd_redis_sentinel *s, const char *addr, int port)
{
    pthread_mutex_lock(&s->mu);
    bool same = s->known && s->mport == port && strcmp(s->addr, addr) == 0;
    bool had = s->addr[0] != '\0';
    char old[ADDR_CAP + 8];
    snprintf(old, sizeof old, "%s:%d", s->addr, s->mport);
    pthread_mutex_unlock(&s->mu);
    if (same)
        return;
    if (s->changed)
        s->changed(s->ctx);
    pthread_mutex_lock(&s->mu);
    bool moved = had && (s->mport != port || strcmp(s->addr, addr) != 0);
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    s->mport = port;
    s->known = true;
    s->why[0] = '\0';
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->known_a, true);
    if (moved)
        atomic_fetch_add(&s->failovers, 1);
    atomic_fetch_add(&s->gen, 1);
    if (moved)
        wd_log_warn("redis",
                    "sentinel: master '%s' moved from %s to %s:%d: every connection follows",
                    s->name, old, addr, port);
    else
        wd_log_info("redis", "sentinel: master '%s' is %s:%d", s->name, addr, port);
}

static void unpublish(struct wd_redis_sentinel *s, const char *why)
{
    pthread_mutex_lock(&s->mu);
    bool known = s->known;
    snprintf(s->why, sizeof s->why, "%s", why);
    pthread_mutex_unlock(&s->mu);
    if (!known)
        return;
    if (s->changed)
        s->changed(s->ctx);
    pthread_mutex_lock(&s->mu);
    s->known = false;
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->known_a, false);
    atomic_fetch_add(&s->gen, 1);
    wd_log_warn("redis",
                "sentinel: no master for '%s' now (%s): requests that need Redis get "
                "redis_on_error",
                s->name, why);
}

/* Whether addr:port is the master published now. */
static bool is_published(struct wd_redis_sentinel *s, const char *addr, int port)
{
    pthread_mutex_lock(&s->mu);
    bool same = s->known && s->mport == port && strcmp(s->addr, addr) == 0;
    pthread_mutex_unlock(&s->mu);
    return same;
}

/* Verifies host:port (as a sentinel announced it) and publishes it. true when published.
 * same_ok: the address published now is taken as it is, without asking it ROLE again (the
 * periodic re-check, a repeated +switch-master: nothing changed, nothing is disturbed).
 * *unusable is set when the address answered and cannot be used: a replica, or AUTH / ROLE
 * refused with the data credentials (a user created on the old master only). */
static bool verify(struct wd_redis_sentinel *s, const char *host, int port, bool same_ok,
                   bool *unusable, char *why, size_t cap)
{
    char addr[ADDR_CAP];
    if (!numeric(host, addr, sizeof addr)) {
        atomic_fetch_add(&s->errors, 1);
        snprintf(why, cap, "announced master %s does not resolve", host);
        return false;
    }
    if (same_ok && is_published(s, addr, port))
        return true;
    char e[160];
    enum role ro = ask_role(s, addr, port, e, sizeof e);
    if (ro == ROLE_MASTER) {
        publish(s, addr, port);
        return true;
    }
    const char *v = strchr(addr, ':') ? "[" : "", *w = strchr(addr, ':') ? "]" : "";
    if (ro == ROLE_REPLICA) {
        snprintf(why, cap,
                 "announced master %s%s%s:%d answers ROLE as a replica (failover in "
                 "progress?)",
                 v, addr, w, port);
    } else {
        /* the master's check failed: a Sentinel failure for the metric too */
        atomic_fetch_add(&s->errors, 1);
        int n = snprintf(why, cap, "announced master %s%s%s:%d %s: %.120s", v, addr, w, port,
                         ro == ROLE_REFUSED ? "refused" : "not answering", e);
        if (ro == ROLE_REFUSED && strncmp(e, "AUTH", 4) == 0 && n > 0 && (size_t)n < cap)
            snprintf(why + n, cap - (size_t)n, "%s",
                     " (redis_username/redis_password must work on every node Sentinel may "
                     "promote)");
    }
    /* unusable: the caller drops the master published only if no other sentinel names a
     * better one (one stale sentinel must not move every connection twice). An address that
     * does not answer at all is not (the clients' backoff; the failover will come). */
    *unusable = *unusable || ro == ROLE_REPLICA || ro == ROLE_REFUSED;
    return false;
}

/* The hint for what a sentinel answered (AUTH to the sentinels, not to the data nodes) */
static const char *sentinel_hint(const char *msg)
{
    if (strstr(msg, "NOAUTH"))
        return " (set redis_sentinel_password)";
    if (strstr(msg, "WRONGPASS") || strstr(msg, "invalid password"))
        return " (check redis_sentinel_password and redis_sentinel_username)";
    return "";
}

/* One round over the sentinels (the last one that answered first). WD_OK: published;
 * WD_ENOENT: every sentinel answered and none knows the name; WD_EBACKEND otherwise.
 * recheck: the periodic one (an unchanged answer is not verified again). */
static int discover(struct wd_redis_sentinel *s, bool recheck)
{
    char why[WHY_CAP] = "", e[160], ve[WHY_CAP];
    size_t unknown = 0;
    bool unusable = false;
    char rwhy[WHY_CAP] = ""; /* why the first unusable address was refused */
    atomic_fetch_add(&s->discoveries, 1);
    for (size_t k = 0; k < s->n && !atomic_load(&s->stopping); k++) {
        size_t i = (s->first + k) % s->n;
        redisContext *c = dial(s, s->host[i], s->port[i], s->user, s->pass, NULL, e, sizeof e);
        if (!c) {
            atomic_fetch_add(&s->errors, 1);
            snprintf(why, sizeof why, "sentinel %s:%d: %s%s", s->host[i], s->port[i], e,
                     sentinel_hint(e));
            continue;
        }
        const char *argv[] = {"SENTINEL", "get-master-addr-by-name", s->name};
        size_t lens[] = {8, 23, strlen(s->name)};
        redisReply *r = exchange(c, 3, argv, lens, s->data.command_timeout_ms, e, sizeof e);
        char host[256] = "";
        int port = 0;
        if (!r) {
            atomic_fetch_add(&s->errors, 1);
            snprintf(why, sizeof why, "sentinel %s:%d: %s", s->host[i], s->port[i], e);
        } else if (r->type == REDIS_REPLY_NIL) {
            unknown++;
            snprintf(why, sizeof why, "sentinel %s:%d does not know master '%s'", s->host[i],
                     s->port[i], s->name);
        } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                   r->element[0]->type == REDIS_REPLY_STRING &&
                   r->element[1]->type == REDIS_REPLY_STRING) {
            if (!wd_redis_sentinel__addr_parse(r->element[0]->str, r->element[0]->len,
                                               r->element[1]->str, r->element[1]->len, host,
                                               sizeof host, &port)) {
                atomic_fetch_add(&s->errors, 1);
                snprintf(why, sizeof why, "sentinel %s:%d: not an address for '%s'", s->host[i],
                         s->port[i], s->name);
            }
        } else {
            atomic_fetch_add(&s->errors, 1);
            const char *m = r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply";
            snprintf(why, sizeof why, "sentinel %s:%d: %.120s%s", s->host[i], s->port[i], m,
                     sentinel_hint(m));
        }
        if (r)
            freeReplyObject(r);
        redisFree(c);
        if (port < 1 || port > 65535)
            continue;
        s->first = i;
        bool was = unusable;
        if (verify(s, host, port, recheck, &unusable, ve, sizeof ve))
            return WD_OK;
        snprintf(why, sizeof why, "%s", ve);
        if (unusable && !was)
            snprintf(rwhy, sizeof rwhy, "%s", ve);
    }
    if (unknown == s->n) {
        snprintf(why, sizeof why,
                 "no sentinel knows master '%s' (check redis_sentinel_master "
                 "against `sentinel monitor NAME ...`)",
                 s->name);
        unpublish(s, why);
        return WD_ENOENT;
    }
    if (unusable && !atomic_load(&s->stopping)) {
        unpublish(s, rwhy);
        return WD_EBACKEND;
    }
    set_why(s, "%s", why[0] ? why : "no sentinel answered");
    return WD_EBACKEND;
}

/* A subscription to +switch-master on one sentinel (the last one that answered first). */
static redisContext *subscribe(struct wd_redis_sentinel *s)
{
    char e[160];
    for (size_t k = 0; k < s->n && !atomic_load(&s->stopping); k++) {
        size_t i = (s->first + k) % s->n;
        redisContext *c = dial(s, s->host[i], s->port[i], s->user, s->pass, NULL, e, sizeof e);
        if (!c) {
            atomic_fetch_add(&s->errors, 1);
            continue;
        }
        const char *argv[] = {"SUBSCRIBE", CHANNEL};
        size_t lens[] = {9, sizeof CHANNEL - 1};
        redisReply *r = exchange(c, 2, argv, lens, s->data.command_timeout_ms, e, sizeof e);
        bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 3;
        if (r)
            freeReplyObject(r);
        if (ok) {
            s->first = i;
            return c;
        }
        atomic_fetch_add(&s->errors, 1);
        redisFree(c);
    }
    return NULL;
}

/* One pushed reply on the subscription: a +switch-master message for this master leaves its
 * new address in host and *port (the last one wins: a burst of them costs one verification);
 * anything else (the keepalive's pong, other masters) is ignored. */
static void on_push(struct wd_redis_sentinel *s, redisReply *r, char *host, size_t cap, int *port)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0 ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    char h[ADDR_CAP * 4];
    int p;
    if (!wd_redis_sentinel__switch_parse(r->element[2]->str, r->element[2]->len, s->name, h,
                                         sizeof h, &p) ||
        strlen(h) >= cap)
        return;
    atomic_fetch_add(&s->switch_msgs, 1);
    memcpy(host, h, strlen(h) + 1);
    *port = p;
}

/* Drains the wake pipe: true when asked to stop. */
static bool drain(struct wd_redis_sentinel *s)
{
    char buf[64];
    ssize_t n;
    while ((n = read(s->wake[0], buf, sizeof buf)) > 0)
        ;
    return atomic_load(&s->stopping);
}

bool wd_redis_sentinel__recheck_due(int64_t now, int64_t last_round, bool want)
{
    return !want && now - last_round >= RECHECK_MS;
}

static void *run(void *arg)
{
    struct wd_redis_sentinel *s = arg;
    redisContext *sub = NULL;
    bool want = false; /* the start did the first discovery */
    unsigned retry = 100;
    int64_t next_try = 0, last_rx = 0, ping_at = 0, last_disc = wd_clock_mono_ms(&wd_clock_real);
    int64_t last_round = last_disc; /* the last round that found the master */
    int64_t next_sub = 0;    /* a lost subscription is made again 100 ms later at the earliest:
                              * a sentinel that closes each one at once costs 10 a second */
    char said[WHY_CAP] = ""; /* the reason last logged while retrying: "" none */
    char sw_host[ADDR_CAP * 4] = ""; /* a +switch-master not verified yet */
    int sw_port = 0;
    while (!atomic_load(&s->stopping)) {
        int64_t now = wd_clock_mono_ms(&wd_clock_real);
        if (atomic_exchange(&s->suspect, false))
            want = true;
        /* a switch announced: verified here, at most every SUSPECT_MIN_MS whatever the
         * number of messages (a flood costs one ROLE per period) */
        if (sw_port && now - last_disc >= SUSPECT_MIN_MS) {
            char e[WHY_CAP];
            last_disc = now;
            wd_log_info("redis", "sentinel: +switch-master '%s' to %s:%d", s->name, sw_host,
                        sw_port);
            bool unusable = false; /* discovery decides what to drop */
            if (!verify(s, sw_host, sw_port, true, &unusable, e, sizeof e)) {
                wd_log_warn("redis", "sentinel: %s", e);
                want = true;
            } else {
                last_round = now;
            }
            sw_port = 0;
        }
        bool recheck = wd_redis_sentinel__recheck_due(now, last_round, want);
        if ((want || recheck) && now >= next_try && now - last_disc >= SUSPECT_MIN_MS) {
            last_disc = now;
            int rc = discover(s, !want);
            want = rc != WD_OK;
            if (want) {
                /* why this round failed: the status would name the master still published */
                char st[WHY_CAP];
                pthread_mutex_lock(&s->mu);
                snprintf(st, sizeof st, "%s", s->why[0] ? s->why : "no sentinel answered");
                pthread_mutex_unlock(&s->mu);
                /* once per reason: a failover that goes from "a replica" to "refused" says
                 * so, a reason that stays the same is not repeated every second */
                if (strcmp(st, said) != 0)
                    wd_log_warn("redis", "sentinel: %s (retrying quietly)", st);
                memcpy(said, st, sizeof said);
                next_try = wd_clock_mono_ms(&wd_clock_real) + retry;
                retry = retry * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry * 2;
            } else {
                said[0] = '\0';
                retry = 100;
                last_round = wd_clock_mono_ms(&wd_clock_real);
            }
        }
        if (!sub && wd_clock_mono_ms(&wd_clock_real) >= next_sub) {
            next_sub = wd_clock_mono_ms(&wd_clock_real) + SUSPECT_MIN_MS;
            sub = subscribe(s);
            if (sub) {
                last_rx = wd_clock_mono_ms(&wd_clock_real);
                ping_at = 0;
                want = true; /* a switch may have been missed while unsubscribed */
            }
        }
        /* sleep until a push, a wake, the keepalive, the next try or the re-check */
        int64_t timeout = IDLE_PING_MS / 2;
        if (want || sw_port) {
            int64_t d = want ? next_try - wd_clock_mono_ms(&wd_clock_real) : 0;
            if (d < SUSPECT_MIN_MS)
                d = SUSPECT_MIN_MS;
            if (d < timeout)
                timeout = d;
        }
        int64_t to_recheck = last_round + RECHECK_MS - wd_clock_mono_ms(&wd_clock_real);
        if (!want && to_recheck < timeout)
            timeout = to_recheck < 1 ? 1 : to_recheck;
        struct pollfd pf[2] = {{.fd = s->wake[0], .events = POLLIN},
                               {.fd = sub ? sub->fd : -1, .events = POLLIN}};
        int pr = poll(pf, sub ? 2 : 1, (int)timeout);
        if (pr < 0 && errno != EINTR)
            break;
        if (pf[0].revents && drain(s))
            break;
        if (!sub)
            continue;
        now = wd_clock_mono_ms(&wd_clock_real);
        bool lost = false;
        const char *why = NULL;
        if (pr > 0 && pf[1].revents) {
            void *rep;
            if (redisBufferRead(sub) != REDIS_OK) {
                lost = true;
            } else {
                /* only whole replies count as signs of life: a sentinel that sends a byte
                 * at a time keeps none, and what it sends is bounded */
                while (!lost && redisGetReplyFromReader(sub, &rep) == REDIS_OK && rep) {
                    last_rx = now;
                    ping_at = 0;
                    on_push(s, rep, sw_host, sizeof sw_host, &sw_port);
                    freeReplyObject(rep);
                }
                lost = lost || sub->err;
                if (!lost && sub->reader->len - sub->reader->pos > REPLY_MAX_BYTES) {
                    lost = true;
                    why = "a message over the size limit";
                }
            }
        } else if (ping_at && now - ping_at > PONG_WAIT_MS) {
            lost = true;
        } else if (!ping_at && now - last_rx >= IDLE_PING_MS) {
            int done = 0;
            if (redisAppendCommand(sub, "PING") != REDIS_OK)
                lost = true;
            while (!lost && !done)
                if (redisBufferWrite(sub, &done) != REDIS_OK)
                    lost = true;
            ping_at = now;
        }
        if (sw_port && is_published(s, sw_host, sw_port))
            sw_port = 0; /* already there: nothing to verify */
        if (lost) {
            atomic_fetch_add(&s->errors, 1);
            wd_log_warn("redis",
                        "sentinel: subscription to %s:%d lost (%s): subscribing to the "
                        "next sentinel",
                        s->host[s->first], s->port[s->first],
                        why              ? why
                        : sub->errstr[0] ? sub->errstr
                                         : "no answer to PING");
            redisFree(sub);
            sub = NULL;
            s->first = (s->first + 1) % s->n;
        }
    }
    if (sub)
        redisFree(sub);
    return NULL;
}

/* ---- public ---- */

static void sentinel_free(struct wd_redis_sentinel *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->host[i]);
    free(s->host);
    free(s->port);
    free(s->name);
    free(s->user);
    free(s->duser);
    if (s->pass) {
        explicit_bzero(s->pass, strlen(s->pass));
        free(s->pass);
    }
    if (s->dpass) {
        explicit_bzero(s->dpass, strlen(s->dpass));
        free(s->dpass);
    }
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static char *dup_or_null(const char *p)
{
    return p ? wd_strdup(p) : NULL;
}

int wd_redis_sentinel_start(const struct wd_redis_sentinel_opts *o, struct wd_redis_sentinel **out,
                            char *err, size_t errcap)
{
    if (errcap)
        err[0] = '\0';
    *out = NULL;
    struct wd_redis_opts d;
    if (!o || !o->master_name || !o->master_name[0] || o->naddrs == 0 ||
        o->naddrs > WD_REDIS_SENTINEL_MAX || (o->username && !o->password) ||
        wd_redis__opts_resolve(&o->data, &d) != WD_OK) {
        wd_seterr(err, errcap, "redis_sentinel: invalid options");
        return WD_EINVAL;
    }
    struct wd_redis_sentinel *s = wd_calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->wake[0] = s->wake[1] = -1;
    s->host = wd_calloc(o->naddrs, sizeof *s->host);
    s->port = wd_calloc(o->naddrs, sizeof *s->port);
    for (size_t i = 0; i < o->naddrs; i++) {
        char h[256];
        if (!wd_config_sentinel_split(o->addrs[i], h, sizeof h, &s->port[i])) {
            wd_seterr(err, errcap, "redis_sentinel: '%s' is not HOST:PORT", o->addrs[i]);
            sentinel_free(s);
            return WD_EINVAL;
        }
        s->host[s->n++] = wd_strdup(h);
    }
    s->name = wd_strdup(o->master_name);
    s->user = dup_or_null(o->username);
    s->pass = dup_or_null(o->password);
    s->duser = dup_or_null(d.username);
    s->dpass = dup_or_null(d.password);
    d.username = s->duser;
    d.password = s->dpass;
    d.host = NULL;
    d.unix_path = NULL;
    s->data = d;
    s->changed = o->changed;
    s->ctx = o->ctx;
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        sentinel_free(s);
        return WD_ENOMEM;
    }
    int rc = discover(s, false);
    if (rc == WD_ENOENT) {
        wd_redis_sentinel_status(s, err, errcap);
        sentinel_free(s);
        return WD_ENOENT;
    }
    if (rc != WD_OK) {
        char st[WHY_CAP];
        wd_redis_sentinel_status(s, st, sizeof st);
        wd_log_warn("redis",
                    "sentinel: no master for '%s' yet (%s); requests that need Redis get "
                    "redis_on_error until one is found",
                    s->name, st);
        atomic_store(&s->suspect, true); /* the thread tries again */
    }
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        sentinel_free(s);
        return WD_ENOMEM;
    }
    s->started = true;
    *out = s;
    return WD_OK;
}

void wd_redis_sentinel_stop(struct wd_redis_sentinel *s)
{
    if (!s)
        return;
    if (s->started) {
        atomic_store(&s->stopping, true);
        ssize_t w;
        do
            w = write(s->wake[1], "x", 1);
        while (w < 0 && errno == EINTR);
        pthread_join(s->thread, NULL);
    }
    sentinel_free(s);
}

size_t wd_redis_sentinel_probe(struct wd_redis_sentinel *s)
{
    size_t bad = 0;
    for (size_t i = 0; s && i < s->n; i++) {
        char e[160];
        redisContext *c = dial(s, s->host[i], s->port[i], s->user, s->pass, NULL, e, sizeof e);
        redisReply *r = NULL;
        if (c) {
            const char *argv[] = {"SENTINEL", "get-master-addr-by-name", s->name};
            size_t lens[] = {8, 23, strlen(s->name)};
            r = exchange(c, 3, argv, lens, s->data.command_timeout_ms, e, sizeof e);
        }
        if (!r) {
            wd_log_warn("redis", "sentinel %s:%d does not answer (%s%s): check redis_sentinel",
                        s->host[i], s->port[i], e, sentinel_hint(e));
            bad++;
        } else if (r->type == REDIS_REPLY_NIL) {
            wd_log_warn("redis",
                        "sentinel %s:%d does not know master '%s': check redis_sentinel "
                        "and redis_sentinel_master",
                        s->host[i], s->port[i], s->name);
            bad++;
        } else if (r->type == REDIS_REPLY_ERROR) {
            wd_log_warn("redis", "sentinel %s:%d: %.120s%s", s->host[i], s->port[i], r->str,
                        sentinel_hint(r->str));
            bad++;
        } else {
            wd_log_info("redis", "sentinel %s:%d knows master '%s'", s->host[i], s->port[i],
                        s->name);
        }
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
    }
    return bad;
}

bool wd_redis_sentinel_master(struct wd_redis_sentinel *s, char *addr, size_t cap, int *port,
                              uint64_t *gen)
{
    *port = 0;
    if (cap)
        addr[0] = '\0';
    pthread_mutex_lock(&s->mu);
    /* read under the mutex: publish() bumps gen after the address, so a client that read an
     * older gen with this address reconnects once more, never keeps a stale one */
    uint64_t g = atomic_load(&s->gen);
    bool known = s->known && strlen(s->addr) < cap;
    if (known) {
        memcpy(addr, s->addr, strlen(s->addr) + 1);
        *port = s->mport;
    }
    pthread_mutex_unlock(&s->mu);
    if (gen)
        *gen = g;
    return known;
}

uint64_t wd_redis_sentinel_generation(struct wd_redis_sentinel *s)
{
    return atomic_load(&s->gen);
}

void wd_redis_sentinel_suspect(struct wd_redis_sentinel *s)
{
    if (!s || atomic_exchange(&s->suspect, true))
        return; /* already asked: one wake is enough */
    ssize_t w = write(s->wake[1], "s", 1);
    (void)w; /* a full pipe already wakes the thread */
}

void wd_redis_sentinel_stats(struct wd_redis_sentinel *s, struct wd_redis_sentinel_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    out->known = atomic_load(&s->known_a);
    out->failovers = atomic_load(&s->failovers);
    out->errors = atomic_load(&s->errors);
    out->discoveries = atomic_load(&s->discoveries);
    out->switch_msgs = atomic_load(&s->switch_msgs);
}

void wd_redis_sentinel_status(struct wd_redis_sentinel *s, char *buf, size_t cap)
{
    if (!cap)
        return;
    pthread_mutex_lock(&s->mu);
    if (s->known)
        snprintf(buf, cap, "%s%s%s:%d (master '%s')", strchr(s->addr, ':') ? "[" : "", s->addr,
                 strchr(s->addr, ':') ? "]" : "", s->mport, s->name);
    else
        snprintf(buf, cap, "%s", s->why[0] ? s->why : "no master known yet");
    pthread_mutex_unlock(&s->mu);
}
