/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis.c: the blocking hiredis client behind redis.h, one connection per worker thread.
 * A blocking context with SO_RCVTIMEO/SO_SNDTIMEO (redisSetTimeout) bounds every command;
 * after any I/O failure the context is unusable (hiredis leaves it in an error state, and a
 * reply may still be in flight), so it is freed and rebuilt rather than reused. Rebuilding
 * is gated by an exponential backoff so a dead or frozen Redis costs each request at most
 * a fast WD_EBACKEND, not a timeout. The backoff resets only after a successful reply (not
 * after a successful connect): a frozen server accepts connections through the kernel
 * backlog but never answers. Replies are checked for their exact shape and copied into
 * plain structs before redisReply is freed.
 */
#include "store/redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/wd.h"
#include "store/redis_int.h"
#include "store/redis_sentinel.h"

struct wd_redis {
    char *host;
    int port;
    char *unix_path;
    char *username;
    char *password;
    int database;
    unsigned connect_timeout_ms, command_timeout_ms;
    unsigned backoff_initial_ms, backoff_max_ms;
    struct wd_redis_sentinel *sentinel; /* NULL: host/port or unix_path */
    uint64_t gen;                       /* the sentinel generation of ctx's address */

    redisContext *ctx;
    uint64_t next_attempt_ms; /* monotonic; no connect before this */
    unsigned backoff_ms;      /* next backoff to apply */
    uint64_t rng;
    char err[160];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set_err(struct wd_redis *r, const char *what, const char *detail)
{
    snprintf(r->err, sizeof r->err, "%s%s%s", what, detail && *detail ? ": " : "",
             detail ? detail : "");
}

static char *dup_opt(const char *s)
{
    return s ? wd_strdup(s) : NULL;
}

int wd_redis__opts_resolve(const struct wd_redis_opts *in, struct wd_redis_opts *out)
{
    if (!in || in->port < 0 || in->port > 65535 || in->database < 0)
        return WD_EINVAL;
    *out = *in;
    if (!out->host)
        out->host = "127.0.0.1";
    if (!out->port)
        out->port = 6379;
    if (!out->connect_timeout_ms)
        out->connect_timeout_ms = 1000;
    if (!out->command_timeout_ms)
        out->command_timeout_ms = 500;
    if (!out->backoff_initial_ms)
        out->backoff_initial_ms = 100;
    if (!out->backoff_max_ms)
        out->backoff_max_ms = 5000;
    if (out->backoff_max_ms < out->backoff_initial_ms)
        out->backoff_max_ms = out->backoff_initial_ms;
    return WD_OK;
}

int wd_redis_new(const struct wd_redis_opts *opts, struct wd_redis **out)
{
    struct wd_redis *r;
    struct wd_redis_opts o;

    if (!out)
        return WD_EINVAL;
    *out = NULL;
    if (wd_redis__opts_resolve(opts, &o) != WD_OK)
        return WD_EINVAL;
    r = wd_calloc(1, sizeof *r);
    r->host = wd_strdup(o.host);
    r->port = o.port;
    r->unix_path = dup_opt(o.unix_path);
    r->username = dup_opt(o.username);
    r->password = dup_opt(o.password);
    r->database = o.database;
    r->connect_timeout_ms = o.connect_timeout_ms;
    r->command_timeout_ms = o.command_timeout_ms;
    r->backoff_initial_ms = o.backoff_initial_ms;
    r->backoff_max_ms = o.backoff_max_ms;
    r->backoff_ms = r->backoff_initial_ms;
    r->sentinel = o.sentinel;
    r->rng = (uint64_t)(uintptr_t)r ^ now_ms() ^ 0x9e3779b97f4a7c15ull;
    *out = r;
    return WD_OK;
}

static void drop(struct wd_redis *r)
{
    uint64_t j;

    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    /* xorshift jitter of up to a quarter, so per-thread connections do not reconnect in
     * lockstep */
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    j = r->backoff_ms / 4 ? r->rng % (r->backoff_ms / 4 + 1) : 0;
    r->next_attempt_ms = now_ms() + r->backoff_ms + j;
    r->backoff_ms = r->backoff_ms >= r->backoff_max_ms / 2 ? r->backoff_max_ms : r->backoff_ms * 2;
}

void wd_redis_free(struct wd_redis *r)
{
    if (!r)
        return;
    if (r->ctx)
        redisFree(r->ctx);
    if (r->password) {
        OPENSSL_cleanse(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->host);
    free(r->unix_path);
    free(r->username);
    free(r);
}

bool wd_redis_is_connected(const struct wd_redis *r)
{
    return r && r->ctx;
}

const char *wd_redis_last_error(const struct wd_redis *r)
{
    return r ? r->err : "";
}

/* AUTH or SELECT on a fresh context: must answer +OK */
static int setup_cmd(struct wd_redis *r, const char *what, int argc, const char **argv,
                     const size_t *lens)
{
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
    char why[120];
    int rc = WD_EBACKEND;

    if (!rep) {
        set_err(r, what, r->ctx->errstr);
        return WD_EBACKEND;
    }
    if (wd_redis__setup_reply_ok(rep, why, sizeof why))
        rc = WD_OK;
    else
        set_err(r, what, why);
    freeReplyObject(rep);
    return rc;
}

/* ROLE on a fresh context whose address came from Sentinel: must say master */
static int check_role(struct wd_redis *r)
{
    const char *argv[1];
    size_t lens[1];
    char why[120];
    wd_redis__role_argv(argv, lens);
    redisReply *rep = redisCommandArgv(r->ctx, 1, argv, lens);
    if (!rep) {
        set_err(r, "ROLE", r->ctx->errstr);
        return WD_EBACKEND;
    }
    int rc = wd_redis__role_from_reply(rep, why, sizeof why);
    freeReplyObject(rep);
    if (rc != WD_OK) {
        set_err(r, "sentinel master", why);
        return WD_EBACKEND;
    }
    return WD_OK;
}

static int do_connect(struct wd_redis *r)
{
    struct timeval ctv = wd_redis__ms_tv(r->connect_timeout_ms);
    int rc = WD_EBACKEND;
    char maddr[64];
    int mport = 0;

    if (r->sentinel &&
        !wd_redis_sentinel_master(r->sentinel, maddr, sizeof maddr, &mport, &r->gen)) {
        set_err(r, "connect", "no Redis master known (Sentinel)");
        goto out;
    }
    if (r->sentinel)
        r->ctx = redisConnectWithTimeout(maddr, mport, ctv);
    else if (r->unix_path)
        r->ctx = redisConnectUnixWithTimeout(r->unix_path, ctv);
    else
        r->ctx = redisConnectWithTimeout(r->host, r->port, ctv);
    if (!r->ctx) {
        set_err(r, "connect", "cannot allocate context");
        goto out;
    }
    if (r->ctx->err) {
        set_err(r, "connect", r->ctx->errstr);
        goto out;
    }
    if (redisSetTimeout(r->ctx, wd_redis__ms_tv(r->command_timeout_ms)) != REDIS_OK) {
        set_err(r, "set timeout", r->ctx->errstr);
        goto out;
    }
    {
        const char *argv[3];
        size_t lens[3];
        char db[16];
        int argc = wd_redis__auth_argv(r->username, r->password, argv, lens);
        if (argc && setup_cmd(r, "AUTH", argc, argv, lens) != WD_OK)
            goto out;
        argc = wd_redis__select_argv(r->database, db, argv, lens);
        if (argc && setup_cmd(r, "SELECT", argc, argv, lens) != WD_OK)
            goto out;
    }
    if (r->sentinel && check_role(r) != WD_OK)
        goto out;
    rc = WD_OK;
out:
    if (rc != WD_OK) {
        if (r->sentinel && mport)
            wd_redis_sentinel_suspect(r->sentinel);
        drop(r);
    }
    return rc;
}

/* The master moved (or is no longer known) since ctx connected: a new connection, at once. */
static void follow_master(struct wd_redis *r)
{
    if (!r->sentinel || wd_redis_sentinel_generation(r->sentinel) == r->gen)
        return;
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    r->next_attempt_ms = 0;
    r->backoff_ms = r->backoff_initial_ms;
}

/* A failure of the connection or a reply saying the server is a replica: Sentinel is told. */
static void tell_sentinel(struct wd_redis *r)
{
    if (r->sentinel)
        wd_redis_sentinel_suspect(r->sentinel);
}

int wd_redis_connect(struct wd_redis *r)
{
    if (!r)
        return WD_EINVAL;
    follow_master(r);
    if (r->ctx)
        return WD_OK;
    if (now_ms() < r->next_attempt_ms) {
        /* keep the cause of the failure that started the backoff */
        if (!strstr(r->err, " (backing off)")) {
            size_t n = strlen(r->err);
            if (n + sizeof " (backing off)" <= sizeof r->err)
                memcpy(r->err + n, " (backing off)", sizeof " (backing off)");
        }
        return WD_EBACKEND;
    }
    return do_connect(r);
}

/* Runs one command; *out gets a reply that is not an error reply. */
static int run(struct wd_redis *r, int argc, const char **argv, const size_t *lens,
               redisReply **out)
{
    *out = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        redisReply *rep;
        bool eof;
        int rc = wd_redis_connect(r);
        if (rc != WD_OK)
            return rc;
        rep = redisCommandArgv(r->ctx, argc, argv, lens);
        if (rep) {
            r->backoff_ms = r->backoff_initial_ms; /* the server answers */
            if (rep->type == REDIS_REPLY_ERROR) {
                set_err(r, "error reply", rep->str);
                if (r->sentinel && wd_redis__reply_not_master(rep)) {
                    tell_sentinel(r);
                    drop(r);
                }
                freeReplyObject(rep);
                return WD_EBACKEND;
            }
            *out = rep;
            return WD_OK;
        }
        eof = r->ctx->err == REDIS_ERR_EOF;
        if (r->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
            set_err(r, "command", "timed out");
        else
            set_err(r, "command", r->ctx->errstr);
        tell_sentinel(r);
        drop(r);
        if (!eof || attempt > 0)
            return WD_EBACKEND;
        /* the server closed a connection we held (restart, idle timeout): the command is a
         * read, so one immediate retry on a fresh connection is safe */
        r->next_attempt_ms = 0;
    }
    return WD_EBACKEND;
}

int wd_redis__exec(struct wd_redis *r, int argc, const char **argv, const size_t *argvlen,
                   long long *intval)
{
    redisReply *rep = NULL;
    int rc;

    if (!r || argc < 1 || !argv || !argvlen)
        return WD_EINVAL;
    rc = run(r, argc, argv, argvlen, &rep);
    if (rc == WD_OK && intval && rep->type == REDIS_REPLY_INTEGER)
        *intval = rep->integer;
    freeReplyObject(rep);
    return rc;
}

void wd_redis_raw_cleanup(struct wd_redis_raw *r)
{
    if (!r)
        return;
    free(r->str);
    memset(r, 0, sizeof *r);
}

int wd_redis__raw_from_reply(const redisReply *rep, size_t max_len, struct wd_redis_raw *out,
                             char *err, size_t errcap)
{
    memset(out, 0, sizeof *out);
    switch (rep->type) {
    case REDIS_REPLY_NIL:
        return WD_OK;
    case REDIS_REPLY_INTEGER:
        out->type = WD_REDIS_RAW_INTEGER;
        out->integer = rep->integer;
        return WD_OK;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        if (rep->type == REDIS_REPLY_STRING && max_len && rep->len > max_len) {
            out->type = WD_REDIS_RAW_OTHER;
            wd_seterr(err, errcap, "reply of %zu bytes, over %zu", (size_t)rep->len, max_len);
            return WD_ETOOBIG;
        }
        out->type = rep->type == REDIS_REPLY_STRING   ? WD_REDIS_RAW_STRING
                    : rep->type == REDIS_REPLY_STATUS ? WD_REDIS_RAW_STATUS
                                                      : WD_REDIS_RAW_ERROR;
        out->len = rep->len;
        out->str = wd_malloc(rep->len + 1);
        if (rep->len)
            memcpy(out->str, rep->str, rep->len);
        out->str[rep->len] = '\0';
        if (out->type == WD_REDIS_RAW_ERROR) {
            wd_seterr(err, errcap, "error reply: %.100s", out->str);
            return WD_EBACKEND;
        }
        return WD_OK;
    default:
        out->type = WD_REDIS_RAW_OTHER;
        return WD_OK;
    }
}

int wd_redis_command(struct wd_redis *r, int argc, const char **argv, const size_t *lens,
                     size_t max_len, struct wd_redis_raw *out)
{
    if (!out)
        return WD_EINVAL;
    memset(out, 0, sizeof *out);
    if (!r || argc < 1 || !argv || !lens)
        return WD_EINVAL;
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = wd_redis_connect(r);
        if (rc != WD_OK)
            return rc;
        redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
        if (rep) {
            r->backoff_ms = r->backoff_initial_ms; /* the server answers */
            rc = wd_redis__raw_from_reply(rep, max_len, out, r->err, sizeof r->err);
            if (r->sentinel && wd_redis__reply_not_master(rep)) {
                tell_sentinel(r);
                drop(r);
            }
            freeReplyObject(rep);
            return rc;
        }
        bool eof = r->ctx->err == REDIS_ERR_EOF;
        if (r->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
            set_err(r, "command", "timed out");
        else
            set_err(r, "command", r->ctx->errstr);
        tell_sentinel(r);
        drop(r);
        if (!eof || attempt > 0)
            return WD_EBACKEND;
        r->next_attempt_ms = 0; /* the server closed a connection we held: once more */
    }
    return WD_EBACKEND;
}

int wd_redis_ping(struct wd_redis *r)
{
    static const char *const argv[] = {"PING"};
    static const size_t argvlen[] = {4};
    return wd_redis__exec(r, 1, (const char **)argv, argvlen, NULL);
}

/* ---- templates ---- */

enum part_kind { PART_LIT, PART_USERNAME, PART_CLIENTID, PART_CN, PART_DN, PART_PEERHOST };

struct part {
    enum part_kind kind;
    char *lit;
    size_t len;
};

struct wd_redis_tmpl {
    struct part *parts;
    size_t n;
};

static void add_part(struct wd_redis_tmpl *t, enum part_kind k, const char *s, size_t n)
{
    if (k == PART_LIT && n == 0)
        return;
    if (k == PART_LIT && t->n && t->parts[t->n - 1].kind == PART_LIT) {
        struct part *p = &t->parts[t->n - 1];
        p->lit = wd_realloc(p->lit, p->len + n + 1);
        memcpy(p->lit + p->len, s, n);
        p->len += n;
        p->lit[p->len] = '\0';
        return;
    }
    t->parts = wd_realloc(t->parts, (t->n + 1) * sizeof *t->parts);
    t->parts[t->n].kind = k;
    t->parts[t->n].lit = k == PART_LIT ? wd_strndup(s, n) : NULL;
    t->parts[t->n].len = n;
    t->n++;
}

size_t wd_redis_tmpl_head(const char *text)
{
    const char *ph = strstr(text, "${");
    return ph ? (size_t)(ph - text) : strlen(text);
}

int wd_redis_tmpl_compile(const char *text, struct wd_redis_tmpl **out, char *err, size_t errcap)
{
    static const struct {
        const char *name;
        enum part_kind kind;
    } vars[] = {
        {"username", PART_USERNAME},
        {"clientid", PART_CLIENTID},
        {"cn", PART_CN},
        {"cert_common_name", PART_CN},
        {"dn", PART_DN},
        {"cert_subject", PART_DN},
        {"peerhost", PART_PEERHOST},
    };
    struct wd_redis_tmpl *t;
    const char *s, *lit;

    if (errcap)
        err[0] = '\0';
    if (!out)
        return WD_EINVAL;
    *out = NULL;
    if (!text) {
        if (errcap)
            snprintf(err, errcap, "no key template");
        return WD_EINVAL;
    }
    t = wd_calloc(1, sizeof *t);
    s = lit = text;
    while (*s) {
        const char *end;
        size_t n, i;
        if (s[0] != '$' || s[1] != '{') {
            s++;
            continue;
        }
        add_part(t, PART_LIT, lit, (size_t)(s - lit));
        end = strchr(s + 2, '}');
        if (!end) {
            if (errcap)
                snprintf(err, errcap, "unterminated placeholder at offset %zu", (size_t)(s - text));
            goto fail;
        }
        n = (size_t)(end - (s + 2));
        if (n == 1 && s[2] == '$') {
            add_part(t, PART_LIT, "$", 1);
        } else {
            for (i = 0; i < WD_ARRAY_LEN(vars); i++)
                if (strlen(vars[i].name) == n && memcmp(vars[i].name, s + 2, n) == 0)
                    break;
            if (i == WD_ARRAY_LEN(vars)) {
                if (errcap)
                    snprintf(err, errcap,
                             "unknown placeholder ${%.*s} (known: ${username}, ${clientid}, "
                             "${cn}, ${cert_common_name}, ${dn}, ${cert_subject}, "
                             "${peerhost}, ${$})",
                             (int)(n > 64 ? 64 : n), s + 2);
                goto fail;
            }
            add_part(t, vars[i].kind, NULL, 0);
        }
        s = lit = end + 1;
    }
    add_part(t, PART_LIT, lit, (size_t)(s - lit));
    *out = t;
    return WD_OK;
fail:
    wd_redis_tmpl_free(t);
    return WD_EINVAL;
}

void wd_redis_tmpl_free(struct wd_redis_tmpl *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->parts[i].lit);
    free(t->parts);
    free(t);
}

static const char *value_of(enum part_kind k, const struct wd_client *c)
{
    const char *v = k == PART_USERNAME   ? c->username
                    : k == PART_CLIENTID ? c->clientid
                    : k == PART_CN       ? c->cn
                    : k == PART_DN       ? c->dn
                                         : c->peerhost;
    return v ? v : "";
}

int wd_redis_tmpl_render(const struct wd_redis_tmpl *t, const struct wd_client *c, char **key,
                         size_t *keylen)
{
    size_t total = 0, off = 0;
    char *k;

    if (!key || !keylen)
        return WD_EINVAL;
    *key = NULL;
    *keylen = 0;
    if (!t || !c)
        return WD_EINVAL;
    /* two passes: lengths (bounded), then bytes */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < t->n; i++) {
            const struct part *p = &t->parts[i];
            const char *v = p->lit;
            size_t n = p->len;
            if (p->kind != PART_LIT) {
                v = value_of(p->kind, c);
                n = strlen(v);
                /* no certificate (or no peer address): no key to look up, see redis.h */
                if (n == 0 && p->kind != PART_USERNAME && p->kind != PART_CLIENTID) {
                    free(*key);
                    *key = NULL;
                    return WD_ENOENT;
                }
            }
            if (pass == 0) {
                if (n > WD_REDIS_KEY_MAX - total)
                    return WD_ETOOBIG;
                total += n;
            } else {
                memcpy(*key + off, v, n);
                off += n;
            }
        }
        if (pass == 0)
            *key = wd_malloc(total + 1);
    }
    k = *key;
    k[total] = '\0';
    *keylen = total;
    return WD_OK;
}

/* ---- shared with redis_async.c (redis_int.h) ---- */

void wd_redis__user_argv(const char *key, size_t keylen, const char **argv, size_t *lens)
{
    static const char *fields[] = {"password_hash", "password", "salt", "is_superuser"};

    argv[0] = "HMGET";
    lens[0] = 5;
    argv[1] = key ? key : "";
    lens[1] = keylen;
    for (int i = 0; i < 4; i++) {
        argv[2 + i] = fields[i];
        lens[2 + i] = strlen(fields[i]);
    }
}

void wd_redis__acl_argv(const char *key, size_t keylen, const char **argv, size_t *lens)
{
    argv[0] = "HGETALL";
    lens[0] = 7;
    argv[1] = key ? key : "";
    lens[1] = keylen;
}

int wd_redis__auth_argv(const char *username, const char *password, const char **argv, size_t *lens)
{
    int n = 0;

    if (!password)
        return 0;
    argv[n] = "AUTH";
    lens[n++] = 4;
    if (username) {
        argv[n] = username;
        lens[n++] = strlen(username);
    }
    argv[n] = password;
    lens[n++] = strlen(password);
    return n;
}

int wd_redis__select_argv(int db, char *buf, const char **argv, size_t *lens)
{
    if (db <= 0)
        return 0;
    int n = snprintf(buf, 16, "%d", db);
    argv[0] = "SELECT";
    lens[0] = 6;
    argv[1] = buf;
    lens[1] = (size_t)n;
    return 2;
}

void wd_redis__role_argv(const char **argv, size_t *lens)
{
    argv[0] = "ROLE";
    lens[0] = 4;
}

int wd_redis__role_from_reply(const redisReply *rep, char *err, size_t errcap)
{
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        /* the hint first and short: callers keep about 100 bytes of this (Redis' NOPERM
         * text is 61), and a truncated hint was what operators saw */
        wd_seterr(err, errcap, "ROLE refused (the user needs +role): %.100s",
                  rep->str ? rep->str : "");
        return WD_EBACKEND;
    }
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        (rep->element[0]->type != REDIS_REPLY_STRING &&
         rep->element[0]->type != REDIS_REPLY_STATUS)) {
        wd_seterr(err, errcap, "ROLE: unexpected reply");
        return WD_EBACKEND;
    }
    const redisReply *w = rep->element[0];
    if (w->len == 6 && memcmp(w->str, "master", 6) == 0) {
        wd_seterr(err, errcap, "%s", "");
        return WD_OK;
    }
    wd_seterr(err, errcap, "ROLE says %.*s, not master", (int)(w->len > 20 ? 20 : w->len), w->str);
    return WD_ENOENT;
}

bool wd_redis__reply_not_master(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ERROR && rep->str &&
           (strncmp(rep->str, "READONLY", 8) == 0 || strncmp(rep->str, "MASTERDOWN", 10) == 0);
}

bool wd_redis__setup_reply_ok(const redisReply *rep, char *err, size_t errcap)
{
    if (rep && rep->type == REDIS_REPLY_STATUS && rep->str && strcmp(rep->str, "OK") == 0)
        return true;
    wd_seterr(err, errcap, "%s",
              rep && rep->type == REDIS_REPLY_ERROR && rep->str ? rep->str : "unexpected reply");
    return false;
}

/* emqx_authn_utils:to_bool/1 on a binary: "true", or binary_to_integer(V) >= 1 (an
 * optional sign and decimal digits only, so "+1" and "007" are true, " 1", "1.0", "TRUE",
 * "yes" and "" false) */
static bool emqx_truthy(const char *s, size_t n)
{
    size_t i = 0;
    bool nonzero = false;

    if (n == 4 && memcmp(s, "true", 4) == 0)
        return true;
    if (n && (s[0] == '+' || s[0] == '-'))
        i = 1;
    if (i == n)
        return false;
    for (size_t j = i; j < n; j++) {
        if (s[j] < '0' || s[j] > '9')
            return false;
        if (s[j] != '0')
            nonzero = true;
    }
    return nonzero && s[0] != '-';
}

static char *copy_bytes(const char *s, size_t n)
{
    char *p = wd_malloc(n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int wd_redis__user_from_reply(const redisReply *rep, struct wd_redis_user *out, char *err,
                              size_t errcap)
{
    const redisReply *pick = NULL;
    int rc = WD_EBACKEND;

    memset(out, 0, sizeof *out);
    if (rep->type == REDIS_REPLY_ERROR) {
        wd_seterr(err, errcap, "error reply: %s", rep->str ? rep->str : "");
        return WD_EBACKEND;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
        wd_seterr(err, errcap, "HMGET: unexpected reply");
        goto out;
    }
    for (int i = 0; i < 4; i++) {
        int ty = rep->element[i]->type;
        if (ty != REDIS_REPLY_NIL && ty != REDIS_REPLY_STRING) {
            wd_seterr(err, errcap, "HMGET: unexpected reply element");
            goto out;
        }
        if (ty == REDIS_REPLY_STRING)
            out->has_fields = true;
    }
    if (rep->element[0]->type == REDIS_REPLY_STRING)
        pick = rep->element[0];
    else if (rep->element[1]->type == REDIS_REPLY_STRING)
        pick = rep->element[1];
    if (rep->element[3]->type == REDIS_REPLY_STRING)
        out->is_superuser = emqx_truthy(rep->element[3]->str, rep->element[3]->len);
    if (!pick) {
        rc = WD_ENOENT;
        goto out;
    }
    out->hash = copy_bytes(pick->str, pick->len);
    out->hash_len = pick->len;
    if (rep->element[2]->type == REDIS_REPLY_STRING) {
        out->salt = copy_bytes(rep->element[2]->str, rep->element[2]->len);
        out->salt_len = rep->element[2]->len;
    } else {
        out->salt = copy_bytes("", 0);
    }
    rc = WD_OK;
out:
    if (rc != WD_OK) {
        /* ENOENT keeps has_fields (and is_superuser, for logs); errors report nothing */
        bool hf = out->has_fields, su = out->is_superuser;
        wd_redis_user_cleanup(out);
        if (rc == WD_ENOENT) {
            out->has_fields = hf;
            out->is_superuser = su;
        }
    }
    return rc;
}

void wd_redis__user_reply_wipe(redisReply *rep)
{
    /* the reply buffers held the stored hash, password and salt */
    if (rep && rep->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < rep->elements && i < 3; i++)
            if (rep->element[i]->type == REDIS_REPLY_STRING && rep->element[i]->str)
                OPENSSL_cleanse(rep->element[i]->str, rep->element[i]->len);
}

int wd_redis__acl_from_reply(const redisReply *rep, struct wd_acl_entry **out, size_t *nout,
                             wd_redis_acl_skip_fn skip, void *ud, char *err, size_t errcap)
{
    struct wd_redis_acl_pair *pairs = NULL;
    size_t np;
    int rc = WD_EBACKEND;

    *out = NULL;
    *nout = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        wd_seterr(err, errcap, "error reply: %s", rep->str ? rep->str : "");
        return WD_EBACKEND;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2) {
        wd_seterr(err, errcap, "HGETALL: unexpected reply");
        return WD_EBACKEND;
    }
    np = rep->elements / 2;
    if (np)
        pairs = wd_calloc(np, sizeof *pairs);
    for (size_t i = 0; i < np; i++) {
        const redisReply *f = rep->element[2 * i], *v = rep->element[2 * i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            wd_seterr(err, errcap, "HGETALL: unexpected reply element");
            goto out;
        }
        pairs[i] = (struct wd_redis_acl_pair){f->str, f->len, v->str, v->len};
    }
    rc = wd_redis_acl_parse(pairs, np, out, nout, skip, ud);
out:
    free(pairs);
    return rc;
}

/* ---- authentication ---- */

int wd_redis_user_get(struct wd_redis *r, const char *key, size_t keylen, struct wd_redis_user *out)
{
    const char *argv[WD_REDIS__USER_ARGC];
    size_t lens[WD_REDIS__USER_ARGC];
    redisReply *rep = NULL;
    int rc;

    if (!out)
        return WD_EINVAL;
    memset(out, 0, sizeof *out);
    if (!r || (!key && keylen))
        return WD_EINVAL;
    wd_redis__user_argv(key, keylen, argv, lens);
    rc = run(r, WD_REDIS__USER_ARGC, argv, lens, &rep);
    if (rc != WD_OK)
        return rc;
    rc = wd_redis__user_from_reply(rep, out, r->err, sizeof r->err);
    wd_redis__user_reply_wipe(rep);
    freeReplyObject(rep);
    return rc;
}

void wd_redis_user_cleanup(struct wd_redis_user *u)
{
    if (!u)
        return;
    if (u->hash) {
        OPENSSL_cleanse(u->hash, u->hash_len);
        free(u->hash);
    }
    if (u->salt) {
        OPENSSL_cleanse(u->salt, u->salt_len);
        free(u->salt);
    }
    memset(u, 0, sizeof *u);
}

void wd_redis_user_spec(const struct wd_redis_user *u, struct wd_passwd_spec *spec)
{
    spec->hash = u->hash;
    spec->hash_len = u->hash_len;
    spec->salt = u->salt;
    spec->salt_len = u->salt_len;
}

/* ---- authorization ---- */

int wd_redis_acl_get(struct wd_redis *r, const char *key, size_t keylen, struct wd_acl_entry **out,
                     size_t *nout, wd_redis_acl_skip_fn skip, void *ud)
{
    const char *argv[WD_REDIS__ACL_ARGC];
    size_t lens[WD_REDIS__ACL_ARGC];
    redisReply *rep = NULL;
    int rc;

    if (!out || !nout)
        return WD_EINVAL;
    *out = NULL;
    *nout = 0;
    if (!r || (!key && keylen))
        return WD_EINVAL;
    wd_redis__acl_argv(key, keylen, argv, lens);
    rc = run(r, WD_REDIS__ACL_ARGC, argv, lens, &rep);
    if (rc != WD_OK)
        return rc;
    rc = wd_redis__acl_from_reply(rep, out, nout, skip, ud, r->err, sizeof r->err);
    freeReplyObject(rep);
    return rc;
}
