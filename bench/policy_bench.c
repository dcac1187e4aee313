/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy_bench: the in-process benchmark of the policy evaluator (src/policy).
 *
 *   policy_bench [-r RULES[,RULES...]] [-n REQUESTS] [-s SEED] [--dump FILE]
 *                [--rounds K] [--verify-all] [--trie-only]
 *
 * For each rule count (default: 10, 1000 and 100000) it
 *   1. generates a policy text shaped like a real deployment (the mix below);
 *   2. compiles it: wall-clock time (best of 20 / 5 / 3 runs for <1k / <100k / >=100k
 *      rules), wd_policy_memory() per rule, and the malloc-heap and RSS growth of the
 *      first compile (the heap and RSS figures include what wd_policy_memory() does not
 *      count: PCRE2 code and JIT pages, malloc overhead);
 *   3. pre-generates REQUESTS authorization requests (default 200000) from the devices,
 *      users and gateways the policy names, so generation is never timed;
 *   4. runs K rounds (default 7); each round times wd_policy_authorize (the trie) over all
 *      requests, repeated for at least 0.25 s, then wd_policy_authorize_linear (the
 *      first-match scan: the baseline) for about 1 s over a window of the requests that
 *      moves every round (the whole set when it fits: at 10 and 1,000 rules every
 *      request; at 100,000 rules a few hundred per round, all distinct); reports
 *      medians over the rounds. Decisions/s are per second of this thread's CPU time
 *      (CLOCK_THREAD_CPUTIME_ID), so time spent descheduled on a shared machine does not
 *      count; stderr shows the lowest on-CPU share of any timed stretch;
 *   5. checks that the two evaluators give the same decision, deciding line and
 *      by-default flag for every request the linear scan evaluated (--verify-all: for
 *      every request, which takes minutes at 100,000 rules); a difference aborts with
 *      the request and the policy lines involved: that is a bug in src/policy.
 *
 * --dump FILE writes each generated policy (FILE.RULES when several counts are run).
 * --trie-only skips the linear baseline (for profiling the trie under perf).
 *
 * The policy mix (shares of the N rules; every category gets at least one rule, the
 * per-device category takes the rest), in file order:
 *   20% wildcard: `deny subscribe "$SYS/#"`, then per fleet F
 *         allow subscribe "fleet/fF/+/status"
 *         deny  all       "fleet/fF/secret/#"
 *         allow publish   "fleet/fF/+/metrics/+"
 *         allow subscribe "fleet/fF/alerts/#"
 *   10% eq: per fleet F
 *         allow subscribe eq "fleet/fF/broadcast/#"
 *         deny  subscribe eq "fleet/fF/#"
 *    5% regex-conditioned: per zone Z
 *         allow publish   "ops/zoneZ/#"       when username ~ "op-zZ-[0-9]+"
 *         allow subscribe "ops/zoneZ/+/state" when username ~ "(op|view)-zZ-[0-9]+"
 *   10% CIDR/port-conditioned: per site S
 *         deny  all       "sites/sS/#"          when not peer in ["10.a.b.0/24", "fd00:0:S::/48"]
 *         allow publish   "sites/sS/ingest/+"   when port = 8883
 *         allow subscribe "sites/sS/config/#"   when port in [1883, 8883]
 *   50% per-device literal: per device I
 *         allow publish   "devices/dev-I/telemetry"  when clientid = "dev-I"
 *         allow subscribe "devices/dev-I/commands/#" when clientid = "dev-I"
 *    5% placeholder: allow publish "devices/${clientid}/events/+",
 *                    allow all "users/${username}/#", then per tenant T
 *         allow publish "tenants/tT/${clientid}/events/+"
 *         allow all     "tenants/tT/home/${username}/#"
 *   and `authz default deny`.
 *
 * The request mix (per mille; topic depth 2 to 5; clients drawn uniformly from the
 * devices, fleets, zones, sites and tenants the policy names):
 *   330 device publishes its own telemetry          (allow: per-device rule)
 *    80 device subscribes to its commands            (allow: per-device rule)
 *    60 device publishes devices/dev-I/events/X      (allow: placeholder)
 *    50 user on users/${username}/...                (allow: placeholder)
 *    40 tenant client on tenants/tT/...              (allow: placeholder)
 *    70 fleet status / metrics / alerts              (allow: wildcard)
 *    30 subscribe eq fleet/fF/broadcast/# or fleet/fF/#  (allow or deny: eq)
 *    50 operator on ops/zoneZ/... (20% a "guest-N")  (allow: regex, or default)
 *    60 site gateway on sites/sS/...                 (allow: CIDR/port; deny when
 *       (25% off-site, 15% IPv6, 20% on port 1883)     off-site; default: 1883 publish)
 *    40 anyone on fleet/fF/secret/...                (deny: wildcard)
 *    30 subscribe $SYS/...                           (deny: wildcard)
 *   110 device on another device's topics            (default deny)
 *    50 unknown topics                               (default deny)
 * The outcome shares actually measured are printed per rule count.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy/policy.h"

/* ---- small utilities ---- */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("policy_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* This thread's CPU time: the denominator of decisions/s, so that time the thread spends
 * descheduled (other processes on a small shared machine) does not count. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: deterministic for a given seed */
struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t below(struct rng *r, uint32_t n)
{
    return n ? (uint32_t)(rnd(r) % n) : 0;
}

/* growable text */
struct buf {
    char *s;
    size_t len, cap;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            die("vsnprintf failed");
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap - b->len <= (size_t)n)
            ncap *= 2;
        char *ns = realloc(b->s, ncap);
        if (!ns)
            die("out of memory");
        b->s = ns;
        b->cap = ncap;
    }
}

/* A fixed-size string pool for request fields: strings live as long as the requests. */
struct pool {
    char *s;
    size_t used, cap;
};

static const char *pool_fmt(struct pool *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *pool_fmt(struct pool *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = p->cap - p->used;
    int n = vsnprintf(p->s + p->used, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room)
        die("request string pool exhausted");
    const char *r = p->s + p->used;
    p->used += (size_t)n + 1;
    return r;
}

/* ---- the policy ---- */

enum cat { C_WILD, C_EQ, C_RE, C_NET, C_DEV, C_PH, NCAT };

static const char *const cat_name[NCAT] = {"wildcard", "eq", "regex", "cidr/port", "per-device",
                                           "placeholder"};
/* shares in per mille; C_DEV takes the remainder */
static const unsigned cat_share[NCAT] = {200, 100, 50, 100, 500, 50};

struct shape {
    size_t nrules;
    size_t n[NCAT];
    /* entities named by the rules */
    uint32_t nfleet, neqfleet, nzone, nsite, ndev, ntenant;
};

static uint32_t ceil_div(size_t a, size_t b)
{
    return (uint32_t)((a + b - 1) / b);
}

static struct shape make_shape(size_t nrules)
{
    struct shape s = {.nrules = nrules};
    size_t rest = nrules;
    for (int c = 0; c < NCAT; c++) {
        if (c == C_DEV)
            continue;
        size_t k = nrules * cat_share[c] / 1000;
        if (k < 1)
            k = 1;
        s.n[c] = k;
        rest -= k;
    }
    s.n[C_DEV] = rest;
    s.nfleet = s.n[C_WILD] > 1 ? ceil_div(s.n[C_WILD] - 1, 4) : 0;
    s.neqfleet = ceil_div(s.n[C_EQ], 2);
    s.nzone = ceil_div(s.n[C_RE], 2);
    s.nsite = ceil_div(s.n[C_NET], 3);
    s.ndev = ceil_div(s.n[C_DEV], 2);
    s.ntenant = s.n[C_PH] > 2 ? ceil_div(s.n[C_PH] - 2, 2) : 0;
    return s;
}

static void site_net(uint32_t site, unsigned *a, unsigned *b)
{
    *a = (site >> 8) & 255;
    *b = site & 255;
}

/* Appends the policy text for shape s. */
static void gen_policy(const struct shape *s, struct buf *b)
{
    bprintf(b, "# generated by bench/policy_bench.c: %zu rules\n", s->nrules);
    bprintf(b, "# mix:");
    for (int c = 0; c < NCAT; c++)
        bprintf(b, "%s %zu %s", c ? "," : "", s->n[c], cat_name[c]);
    bprintf(b, "\n");

    bprintf(b, "\n# wildcard rules, per fleet\n");
    for (size_t j = 0; j < s->n[C_WILD]; j++) {
        if (j == 0) {
            bprintf(b, "deny subscribe \"$SYS/#\"\n");
            continue;
        }
        size_t f = (j - 1) / 4;
        switch ((j - 1) % 4) {
        case 0:
            bprintf(b, "allow subscribe \"fleet/f%zu/+/status\"\n", f);
            break;
        case 1:
            bprintf(b, "deny all \"fleet/f%zu/secret/#\"\n", f);
            break;
        case 2:
            bprintf(b, "allow publish \"fleet/f%zu/+/metrics/+\"\n", f);
            break;
        default:
            bprintf(b, "allow subscribe \"fleet/f%zu/alerts/#\"\n", f);
            break;
        }
    }

    bprintf(b, "\n# exact-string (eq) rules, per fleet\n");
    for (size_t j = 0; j < s->n[C_EQ]; j++) {
        size_t f = j / 2;
        if (j % 2 == 0)
            bprintf(b, "allow subscribe eq \"fleet/f%zu/broadcast/#\"\n", f);
        else
            bprintf(b, "deny subscribe eq \"fleet/f%zu/#\"\n", f);
    }

    bprintf(b, "\n# regex-conditioned rules, per zone\n");
    for (size_t j = 0; j < s->n[C_RE]; j++) {
        size_t z = j / 2;
        if (j % 2 == 0)
            bprintf(b, "allow publish \"ops/zone%zu/#\" when username ~ \"op-z%zu-[0-9]+\"\n", z,
                    z);
        else
            bprintf(b,
                    "allow subscribe \"ops/zone%zu/+/state\" when username ~ "
                    "\"(op|view)-z%zu-[0-9]+\"\n",
                    z, z);
    }

    bprintf(b, "\n# CIDR/port-conditioned rules, per site\n");
    for (size_t j = 0; j < s->n[C_NET]; j++) {
        uint32_t site = (uint32_t)(j / 3);
        unsigned a, c;
        site_net(site, &a, &c);
        switch (j % 3) {
        case 0:
            bprintf(b,
                    "deny all \"sites/s%u/#\" when not peer in [\"10.%u.%u.0/24\", "
                    "\"fd00:0:%x::/48\"]\n",
                    site, a, c, site);
            break;
        case 1:
            bprintf(b, "allow publish \"sites/s%u/ingest/+\" when port = 8883\n", site);
            break;
        default:
            bprintf(b, "allow subscribe \"sites/s%u/config/#\" when port in [1883, 8883]\n", site);
            break;
        }
    }

    bprintf(b, "\n# per-device literal rules\n");
    for (size_t j = 0; j < s->n[C_DEV]; j++) {
        size_t d = j / 2;
        if (j % 2 == 0)
            bprintf(b, "allow publish \"devices/dev-%zu/telemetry\" when clientid = \"dev-%zu\"\n",
                    d, d);
        else
            bprintf(b,
                    "allow subscribe \"devices/dev-%zu/commands/#\" when clientid = \"dev-%zu\"\n",
                    d, d);
    }

    bprintf(b, "\n# placeholder rules: global, then per tenant\n");
    for (size_t j = 0; j < s->n[C_PH]; j++) {
        if (j == 0) {
            bprintf(b, "allow publish \"devices/${clientid}/events/+\"\n");
            continue;
        }
        if (j == 1) {
            bprintf(b, "allow all \"users/${username}/#\"\n");
            continue;
        }
        size_t t = (j - 2) / 2;
        if ((j - 2) % 2 == 0)
            bprintf(b, "allow publish \"tenants/t%zu/${clientid}/events/+\"\n", t);
        else
            bprintf(b, "allow all \"tenants/t%zu/home/${username}/#\"\n", t);
    }
    bprintf(b, "\nauthz default deny\n");
}

/* ---- the requests ---- */

struct reqs {
    struct wd_authz_req *v;
    size_t n;
    struct pool pool;
};

static void client_init(struct wd_client *c, const char *cid, const char *user, const char *peer,
                        uint32_t port)
{
    *c = (struct wd_client){.node = "warden@bench",
                            .clientid = cid,
                            .username = user,
                            .peerhost = peer,
                            .peerport = 40000,
                            .sockport = port,
                            .protocol = "mqtt",
                            .mountpoint = "",
                            .cn = "",
                            .dn = "",
                            .anonymous = user[0] == '\0',
                            .is_superuser = false};
}

static void device_client(struct pool *p, struct rng *r, struct wd_client *c, uint32_t dev)
{
    const char *id = pool_fmt(p, "dev-%u", dev);
    const char *peer = pool_fmt(p, "172.16.%u.%u", (dev >> 8) & 255, 1 + dev % 254);
    client_init(c, id, id, peer, below(r, 4) ? 8883 : 1883);
}

static const char *const words[] = {"temp", "alarm", "door", "pump3", "valve", "rpm", "gps", "log"};

static void gen_request(const struct shape *s, struct pool *p, struct rng *r,
                        struct wd_authz_req *q)
{
    memset(q, 0, sizeof *q);
    q->qos = -1;
    q->retain = -1; /* as from EMQX: unknown */
    uint32_t k = below(r, 1000);
    uint32_t ndev = s->ndev ? s->ndev : 1;
    const char *w = words[below(r, WD_ARRAY_LEN(words))];
    struct wd_client *c = &q->client;
    q->action = WD_ACTION_PUBLISH;

    if (k < 330) { /* own telemetry */
        uint32_t d = below(r, ndev);
        device_client(p, r, c, d);
        q->topic = pool_fmt(p, "devices/dev-%u/telemetry", d);
    } else if ((k -= 330) < 80) { /* own commands */
        uint32_t d = below(r, ndev);
        device_client(p, r, c, d);
        q->action = WD_ACTION_SUBSCRIBE;
        q->topic = below(r, 2) ? pool_fmt(p, "devices/dev-%u/commands/#", d)
                               : pool_fmt(p, "devices/dev-%u/commands/%s", d, w);
    } else if ((k -= 80) < 60) { /* own events: placeholder */
        uint32_t d = below(r, ndev);
        device_client(p, r, c, d);
        q->topic = pool_fmt(p, "devices/dev-%u/events/%s", d, w);
    } else if ((k -= 60) < 50) { /* users/${username}/# */
        uint32_t u = below(r, ndev);
        const char *user = pool_fmt(p, "u-%u", u);
        client_init(c, pool_fmt(p, "app-%u-%u", u, below(r, 3)), user,
                    pool_fmt(p, "100.64.%u.%u", (u >> 8) & 255, 1 + u % 254), 8883);
        switch (below(r, 3)) {
        case 0:
            q->topic = pool_fmt(p, "users/%s/inbox", user);
            break;
        case 1:
            q->action = WD_ACTION_SUBSCRIBE;
            q->topic = pool_fmt(p, "users/%s/inbox/#", user);
            break;
        default:
            q->topic = pool_fmt(p, "users/%s/prefs/%s", user, w);
            break;
        }
    } else if ((k -= 50) < 40) { /* tenants: placeholder */
        uint32_t t = below(r, s->ntenant ? s->ntenant : 1), i = below(r, 50);
        const char *cid = pool_fmt(p, "t%u-c%u", t, i);
        const char *user = pool_fmt(p, "t%u-u%u", t, i);
        client_init(c, cid, user, pool_fmt(p, "100.65.%u.%u", t & 255, 1 + i), 8883);
        if (below(r, 2)) {
            q->topic = pool_fmt(p, "tenants/t%u/%s/events/%s", t, cid, w);
        } else {
            q->action = WD_ACTION_SUBSCRIBE;
            q->topic = pool_fmt(p, "tenants/t%u/home/%s/#", t, user);
        }
    } else if ((k -= 40) < 70) { /* fleet wildcards */
        uint32_t f = below(r, s->nfleet ? s->nfleet : 1), d = below(r, ndev);
        device_client(p, r, c, d);
        switch (below(r, 3)) {
        case 0:
            q->action = WD_ACTION_SUBSCRIBE;
            q->topic = pool_fmt(p, "fleet/f%u/dev-%u/status", f, d);
            break;
        case 1:
            q->topic = pool_fmt(p, "fleet/f%u/dev-%u/metrics/%s", f, d, w);
            break;
        default:
            q->action = WD_ACTION_SUBSCRIBE;
            q->topic = pool_fmt(p, "fleet/f%u/alerts/#", f);
            break;
        }
    } else if ((k -= 70) < 30) { /* eq */
        uint32_t f = below(r, s->neqfleet), d = below(r, ndev);
        device_client(p, r, c, d);
        q->action = WD_ACTION_SUBSCRIBE;
        q->topic = below(r, 2) ? pool_fmt(p, "fleet/f%u/broadcast/#", f)
                               : pool_fmt(p, "fleet/f%u/#", f);
    } else if ((k -= 30) < 50) { /* ops: regex */
        uint32_t z = below(r, s->nzone), n = below(r, 1000);
        const char *user;
        uint32_t kind = below(r, 10);
        if (kind < 2)
            user = pool_fmt(p, "guest-%u", n);
        else if (kind < 6)
            user = pool_fmt(p, "op-z%u-%u", z, n);
        else
            user = pool_fmt(p, "view-z%u-%u", z, n);
        client_init(c, pool_fmt(p, "console-%u", n), user, "10.200.0.9", 8883);
        if (user[0] == 'o' && below(r, 2)) {
            q->topic = pool_fmt(p, "ops/zone%u/cmd/%s", z, w);
        } else {
            q->action = WD_ACTION_SUBSCRIBE;
            q->topic = pool_fmt(p, "ops/zone%u/%s/state", z, w);
        }
    } else if ((k -= 50) < 60) { /* sites: cidr/port */
        uint32_t st = below(r, s->nsite), h = 1 + below(r, 254);
        unsigned a, b;
        site_net(st, &a, &b);
        const char *peer;
        if (below(r, 4) == 0)
            peer = pool_fmt(p, "192.168.%u.%u", b, h); /* off-site */
        else if (below(r, 5) == 0)
            peer = pool_fmt(p, "fd00:0:%x::%x", st, h);
        else
            peer = pool_fmt(p, "10.%u.%u.%u", a, b, h);
        client_init(c, pool_fmt(p, "gw-s%u-%u", st, h), pool_fmt(p, "gw-s%u", st), peer,
                    below(r, 5) ? 8883 : 1883);
        if (below(r, 3)) {
            q->topic = pool_fmt(p, "sites/s%u/ingest/%s", st, w);
        } else {
            q->action = WD_ACTION_SUBSCRIBE;
            q->topic = pool_fmt(p, "sites/s%u/config/#", st);
        }
    } else if ((k -= 60) < 40) { /* fleet secrets: deny */
        uint32_t f = below(r, s->nfleet ? s->nfleet : 1), d = below(r, ndev);
        device_client(p, r, c, d);
        if (below(r, 2))
            q->topic = pool_fmt(p, "fleet/f%u/secret/%s", f, w);
        else {
            q->action = WD_ACTION_SUBSCRIBE;
            q->topic = pool_fmt(p, "fleet/f%u/secret/#", f);
        }
    } else if ((k -= 40) < 30) { /* $SYS: deny */
        uint32_t d = below(r, ndev);
        device_client(p, r, c, d);
        q->action = WD_ACTION_SUBSCRIBE;
        q->topic = below(r, 2) ? "$SYS/broker/clients/#" : "$SYS/brokers/+/version";
    } else if ((k -= 30) < 110) { /* another device's topics: default */
        uint32_t d = below(r, ndev), o = below(r, ndev);
        if (o == d)
            o = (o + 1) % (ndev + 1); /* dev-ndev does not exist: still not d's */
        device_client(p, r, c, d);
        if (below(r, 2)) {
            q->topic = pool_fmt(p, "devices/dev-%u/telemetry", o);
        } else {
            q->action = WD_ACTION_SUBSCRIBE;
            q->topic = pool_fmt(p, "devices/dev-%u/commands/#", o);
        }
    } else { /* unknown topics: default */
        uint32_t d = below(r, ndev);
        device_client(p, r, c, d);
        switch (below(r, 4)) {
        case 0:
            q->topic = pool_fmt(p, "misc/%s", w);
            break;
        case 1:
            q->topic = pool_fmt(p, "misc/%s/dev-%u", w, d);
            break;
        case 2:
            q->action = WD_ACTION_SUBSCRIBE;
            q->topic = pool_fmt(p, "legacy/%u/+/%s/#", d % 97, w);
            break;
        default:
            q->topic = pool_fmt(p, "devices/dev-%u/debug/%s/raw", d, w);
            break;
        }
    }
    q->topic_len = strlen(q->topic);
}

static void gen_requests(const struct shape *s, size_t n, uint64_t seed, struct reqs *out)
{
    out->n = n;
    out->v = xmalloc(n * sizeof *out->v);
    out->pool.cap = n * 160 + 4096;
    out->pool.s = xmalloc(out->pool.cap);
    out->pool.used = 0;
    struct rng r = {seed};
    for (size_t i = 0; i < n; i++)
        gen_request(s, &out->pool, &r, &out->v[i]);
}

static void free_requests(struct reqs *q)
{
    free(q->v);
    free(q->pool.s);
    memset(q, 0, sizeof *q);
}

/* ---- measuring ---- */

static uint32_t pack(const struct wd_policy_result *r)
{
    return (uint32_t)r->decision << 30 | (uint32_t)r->by_default << 29 | (r->line & 0x1fffffffu);
}

static volatile uint32_t g_sink;

/* One pass of the trie over every request; results into res. */
static void trie_pass(const struct wd_policy *p, const struct reqs *q, uint32_t *res)
{
    uint32_t acc = 0;
    for (size_t i = 0; i < q->n; i++) {
        struct wd_policy_result o;
        wd_policy_authorize(p, &q->v[i], &o);
        res[i] = pack(&o);
        acc += res[i];
    }
    g_sink += acc;
}

/* The linear scan over requests [from, from + n) (mod q->n); results into res. */
static void linear_window(const struct wd_policy *p, const struct reqs *q, size_t from, size_t n,
                          uint32_t *res)
{
    uint32_t acc = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = (from + k) % q->n;
        struct wd_policy_result o;
        wd_policy_authorize_linear(p, &q->v[i], &o);
        res[i] = pack(&o);
        acc += res[i];
    }
    g_sink += acc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long size = 0, res = 0;
    int ok = fscanf(f, "%lu %lu", &size, &res) == 2;
    fclose(f);
    return ok ? res * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static const char *decision_name(uint32_t packed)
{
    switch (packed >> 30) {
    case WD_DECISION_ALLOW:
        return "allow";
    case WD_DECISION_DENY:
        return "deny";
    default:
        return "nomatch";
    }
}

static void print_line(const char *src, size_t len, unsigned line)
{
    if (!line) {
        fprintf(stderr, "      (implicit default)\n");
        return;
    }
    unsigned l = 1;
    size_t i = 0;
    while (i < len && l < line)
        l += src[i++] == '\n';
    size_t e = i;
    while (e < len && src[e] != '\n')
        e++;
    fprintf(stderr, "      %u | %.*s\n", line, (int)(e - i), src + i);
}

static void mismatch(const char *src, size_t len, const struct wd_authz_req *q, uint32_t t,
                     uint32_t l)
{
    fprintf(stderr,
            "\npolicy_bench: BUG: trie and linear scan disagree\n"
            "  request: %s \"%s\" clientid \"%s\" username \"%s\" peer \"%s\" port %u\n"
            "  trie:    %s by line %u%s\n",
            q->action == WD_ACTION_PUBLISH ? "publish" : "subscribe", q->topic,
            q->client.clientid, q->client.username, q->client.peerhost, q->client.sockport,
            decision_name(t), t & 0x1fffffffu, (t >> 29 & 1) ? " (default)" : "");
    print_line(src, len, t & 0x1fffffffu);
    fprintf(stderr, "  linear:  %s by line %u%s\n", decision_name(l), l & 0x1fffffffu,
            (l >> 29 & 1) ? " (default)" : "");
    print_line(src, len, l & 0x1fffffffu);
    fprintf(stderr, "  (rerun with the same -r/-n/-s and --dump FILE to get the whole policy)\n");
    abort();
}

struct row {
    size_t rules;
    double compile_ms;
    double bytes_per_rule;
    double heap_per_rule, rss_mib;
    size_t nwarnings;
    double trie_rate, linear_rate, ratio;
    size_t verified, nreq;
    double allow_pct, deny_pct, default_pct;
};

struct opts {
    size_t nreq;
    uint64_t seed;
    const char *dump;
    int rounds;
    bool verify_all, trie_only;
    bool several;
};

static void run_one(size_t nrules, const struct opts *o, struct row *row)
{
    struct shape s = make_shape(nrules);
    struct buf text = {0};
    gen_policy(&s, &text);
    if (text.len > WD_POLICY_MAX_BYTES)
        die("the generated %zu-rule policy is %zu bytes, over the %u-byte file limit "
            "(about 250,000 rules fit)",
            nrules, text.len, WD_POLICY_MAX_BYTES);

    if (o->dump) {
        char name[4096];
        if (o->several)
            snprintf(name, sizeof name, "%s.%zu", o->dump, nrules);
        else
            snprintf(name, sizeof name, "%s", o->dump);
        FILE *f = fopen(name, "w");
        if (!f || fwrite(text.s, 1, text.len, f) != text.len || fclose(f) != 0)
            die("cannot write %s: %s", name, strerror(errno));
        fprintf(stderr, "policy_bench: wrote %s (%zu bytes)\n", name, text.len);
    }

    /* compile: best of several; the first one also measures heap and RSS growth */
    int ncompiles = nrules >= 100000 ? 3 : nrules >= 1000 ? 5 : 20;
    double best = 1e9;
    struct wd_policy *keep = NULL;
    size_t heap0 = heap_bytes(), rss0 = rss_bytes();
    for (int i = 0; i < ncompiles; i++) {
        struct wd_diags d;
        wd_diags_init(&d, "bench.policy", text.s, text.len);
        struct wd_policy *p = NULL;
        double t0 = now_s();
        int rc = wd_policy_compile(text.s, text.len, &d, &p);
        double t = now_s() - t0;
        if (rc != WD_OK) {
            char *r = wd_diags_render(&d);
            fprintf(stderr, "%s", r);
            free(r);
            die("the generated %zu-rule policy does not compile", nrules);
        }
        if (i == 0) {
            size_t heap1 = heap_bytes();
            row->heap_per_rule = heap1 > heap0 ? (double)(heap1 - heap0) / (double)nrules : 0;
            size_t rss1 = rss_bytes();
            row->rss_mib = rss1 > rss0 ? (double)(rss1 - rss0) / (1 << 20) : 0;
            row->nwarnings = d.nwarnings;
            if (d.nwarnings) {
                char *r = wd_diags_render(&d);
                fprintf(stderr, "policy_bench: %zu rules: %zu warnings; the first:\n%.600s\n",
                        nrules, d.nwarnings, r);
                free(r);
            }
            keep = p;
        } else {
            wd_policy_release(p);
        }
        wd_diags_cleanup(&d);
        if (t < best)
            best = t;
    }
    struct wd_policy *p = keep;
    if (wd_policy_nrules(p) != nrules)
        die("compiled %zu rules, generated %zu", wd_policy_nrules(p), nrules);
    row->rules = nrules;
    row->compile_ms = best * 1e3;
    row->bytes_per_rule = (double)wd_policy_memory(p) / (double)nrules;

    struct reqs q;
    gen_requests(&s, o->nreq, o->seed * 0x100000001b3ULL + nrules, &q);
    uint32_t *tres = xmalloc(q.n * sizeof *tres);
    uint32_t *lres = xmalloc(q.n * sizeof *lres);
    uint8_t *checked = calloc(q.n, 1);
    if (!checked)
        die("out of memory");

    /* warm-up, and how long one trie pass takes */
    double t0 = now_s();
    trie_pass(p, &q, tres);
    double pass = now_s() - t0;
    int passes = (int)(0.25 / (pass > 1e-6 ? pass : 1e-6)) + 1;

    /* linear window: about 1 s per round, unless --verify-all */
    size_t win = q.n;
    if (!o->trie_only && !o->verify_all) {
        size_t probe = q.n < 200 ? q.n : 200;
        t0 = now_s();
        linear_window(p, &q, 0, probe, lres);
        double per = (now_s() - t0) / (double)probe;
        double w = 1.0 / (per > 1e-9 ? per : 1e-9);
        if (w < (double)q.n)
            win = w < 200 ? 200 : (size_t)w;
    }

    double *trate = xmalloc((size_t)o->rounds * sizeof *trate);
    double *lrate = xmalloc((size_t)o->rounds * sizeof *lrate);
    double *ratio = xmalloc((size_t)o->rounds * sizeof *ratio);
    size_t from = 0;
    double oncpu = 1.0; /* the lowest CPU/wall share of a timed stretch */
    for (int r = 0; r < o->rounds; r++) {
        t0 = now_s();
        double c0 = cpu_s();
        for (int k = 0; k < passes; k++)
            trie_pass(p, &q, tres);
        double cpu = cpu_s() - c0, wall = now_s() - t0;
        trate[r] = (double)q.n * passes / cpu;
        oncpu = cpu / wall < oncpu ? cpu / wall : oncpu;
        if (o->trie_only)
            continue;
        size_t n = o->verify_all && r > 0 ? 0 : win;
        if (n) {
            t0 = now_s();
            c0 = cpu_s();
            linear_window(p, &q, from, n, lres);
            cpu = cpu_s() - c0;
            wall = now_s() - t0;
            lrate[r] = (double)n / cpu;
            oncpu = cpu / wall < oncpu ? cpu / wall : oncpu;
            for (size_t k = 0; k < n; k++) {
                size_t i = (from + k) % q.n;
                if (lres[i] != tres[i])
                    mismatch(text.s, text.len, &q.v[i], tres[i], lres[i]);
                checked[i] = 1;
            }
            from = (from + n) % q.n;
        } else {
            lrate[r] = lrate[0];
        }
        ratio[r] = trate[r] / lrate[r];
    }
    size_t nchecked = 0;
    for (size_t i = 0; i < q.n; i++)
        nchecked += checked[i];

    size_t nallow = 0, ndeny = 0, ndefault = 0;
    for (size_t i = 0; i < q.n; i++) {
        if (tres[i] >> 29 & 1)
            ndefault++;
        else if ((tres[i] >> 30) == WD_DECISION_ALLOW)
            nallow++;
        else
            ndeny++;
    }
    double tmin = trate[0], tmax = trate[0];
    for (int r = 1; r < o->rounds; r++) {
        tmin = trate[r] < tmin ? trate[r] : tmin;
        tmax = trate[r] > tmax ? trate[r] : tmax;
    }
    row->trie_rate = median(trate, (size_t)o->rounds);
    row->linear_rate = o->trie_only ? 0 : median(lrate, (size_t)o->rounds);
    row->ratio = o->trie_only ? 0 : median(ratio, (size_t)o->rounds);
    row->verified = nchecked;
    row->nreq = q.n;
    row->allow_pct = 100.0 * (double)nallow / (double)q.n;
    row->deny_pct = 100.0 * (double)ndeny / (double)q.n;
    row->default_pct = 100.0 * (double)ndefault / (double)q.n;

    fprintf(stderr,
            "policy_bench: %zu rules: compile %.2f ms, trie %.2fM/s (rounds %.2f-%.2f), "
            "linear %.0f/s (%zu of %zu requests checked; on CPU >= %.0f%% of the time)\n",
            nrules, row->compile_ms, row->trie_rate / 1e6, tmin / 1e6, tmax / 1e6,
            row->linear_rate, nchecked, q.n, oncpu * 100);

    free(trate);
    free(lrate);
    free(ratio);
    free(checked);
    free(tres);
    free(lres);
    free_requests(&q);
    wd_policy_release(p);
    free(text.s);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: policy_bench [-r RULES[,RULES...]] [-n REQUESTS] [-s SEED] [--dump FILE]\n"
               "                    [--rounds K] [--verify-all] [--trie-only]\n"
               "  -r  rule counts, 6 to about 250000 each (default 10,1000,100000)\n"
               "  -n  requests per rule count (default 200000)\n"
               "  -s  seed (default 1)\n"
               "  --dump FILE    write the generated policy (FILE.RULES for several counts)\n"
               "  --rounds K     measurement rounds, medians reported (default 7)\n"
               "  --verify-all   run the linear scan over every request (slow at 100k rules)\n"
               "  --trie-only    skip the linear baseline (profiling)\n");
}

static unsigned long long parse_num(const char *s, const char *what, unsigned long long min)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < min)
        die("bad %s '%s'", what, s);
    return v;
}

int main(int argc, char **argv)
{
    struct opts o = {.nreq = 200000, .seed = 1, .rounds = 7};
    size_t sizes[16] = {10, 1000, 100000};
    size_t nsizes = 3;
    static const struct option longopts[] = {
        {"rules", required_argument, NULL, 'r'},  {"requests", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},   {"dump", required_argument, NULL, 'd'},
        {"rounds", required_argument, NULL, 'k'}, {"verify-all", no_argument, NULL, 'V'},
        {"trie-only", no_argument, NULL, 'T'},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "r:n:s:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'r': {
            nsizes = 0;
            char *list = strdup(optarg), *save = NULL;
            if (!list)
                die("out of memory");
            for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (nsizes == WD_ARRAY_LEN(sizes))
                    die("at most %zu rule counts", WD_ARRAY_LEN(sizes));
                size_t v = (size_t)parse_num(t, "rule count", 1);
                if (v < 6 || v > WD_POLICY_MAX_RULES)
                    die("rule count %zu out of range (6 to %d)", v, WD_POLICY_MAX_RULES);
                sizes[nsizes++] = v;
            }
            free(list);
            if (!nsizes)
                die("no rule count in -r");
            break;
        }
        case 'n':
            o.nreq = (size_t)parse_num(optarg, "request count", 1);
            break;
        case 's':
            o.seed = parse_num(optarg, "seed", 0);
            break;
        case 'd':
            o.dump = optarg;
            break;
        case 'k':
            if (parse_num(optarg, "round count", 1) > 1000)
                die("at most 1000 rounds");
            o.rounds = (int)parse_num(optarg, "round count", 1);
            break;
        case 'V':
            o.verify_all = true;
            break;
        case 'T':
            o.trie_only = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    o.several = nsizes > 1;

    struct row rows[16];
    for (size_t i = 0; i < nsizes; i++)
        run_one(sizes[i], &o, &rows[i]);

    printf("\n| rules | compile ms | bytes/rule | trie decisions/s | linear decisions/s "
           "| trie/linear | trie ns/decision |\n"
           "|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < nsizes; i++) {
        const struct row *r = &rows[i];
        printf("| %zu | %.3f | %.0f | %.0f | ", r->rules, r->compile_ms, r->bytes_per_rule,
               r->trie_rate);
        if (o.trie_only)
            printf("- | - | ");
        else
            printf("%.0f | %.1fx | ", r->linear_rate, r->ratio);
        printf("%.0f |\n", 1e9 / r->trie_rate);
    }
    printf("\n| rules | warnings | heap bytes/rule | RSS growth MiB | allow %% | deny %% "
           "| default %% | requests | checked trie == linear |\n"
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < nsizes; i++) {
        const struct row *r = &rows[i];
        printf("| %zu | %zu | %.0f | %.1f | %.1f | %.1f | %.1f | %zu | %zu |\n", r->rules,
               r->nwarnings, r->heap_per_rule, r->rss_mib, r->allow_pct, r->deny_pct,
               r->default_pct, r->nreq, r->verified);
    }

    /* the issue's targets */
    const struct row *r10 = NULL, *r1k = NULL, *r100k = NULL;
    for (size_t i = 0; i < nsizes; i++) {
        if (rows[i].rules == 10)
            r10 = &rows[i];
        if (rows[i].rules == 1000)
            r1k = &rows[i];
        if (rows[i].rules == 100000)
            r100k = &rows[i];
    }
    printf("\ntargets:\n");
    if (r1k)
        printf("  >= 5M decisions/s at 1,000 rules (trie): %.2fM/s: %s\n", r1k->trie_rate / 1e6,
               r1k->trie_rate >= 5e6 ? "met" : "MISSED");
    if (r10 && r100k) {
        double x = r10->trie_rate / r100k->trie_rate;
        printf("  100,000-rule cost within 2x of 10-rule cost (trie): %.0f ns vs %.0f ns = %.2fx: "
               "%s\n",
               1e9 / r100k->trie_rate, 1e9 / r10->trie_rate, x, x <= 2.0 ? "met" : "MISSED");
    }
    if (r100k)
        printf("  compile 100,000 rules in < 1 s: %.0f ms: %s\n", r100k->compile_ms,
               r100k->compile_ms < 1000 ? "met" : "MISSED");
    for (size_t i = 0; i < nsizes; i++)
        printf("  memory at %zu rules: %.0f bytes/rule (wd_policy_memory), %.0f heap bytes/rule\n",
               rows[i].rules, rows[i].bytes_per_rule, rows[i].heap_per_rule);
    return 0;
}
