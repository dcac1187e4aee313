/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session_share.c: see session_share.h. Builds the commands of `session_store redis` and
 * reads their replies; backends.c sends them. Kept apart from the I/O so that the key
 * layout, the TTL rule and the compare-and-delete script are in one place and tested
 * without a loop.
 */
#include "engine/session_share.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/wd.h"
#include "store/session_rec.h"

struct wd_session_share {
    char *prefix;
    int64_t redis_ttl_ms;
};

/* Deletes the record only if it is the one this connection made (session_share.h). A value
 * that is not a JSON object is left alone: it is not warden's. */
static const char DROP_SCRIPT[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return 0 end\n"
    "local ok, s = pcall(cjson.decode, v)\n"
    "if not ok or type(s) ~= 'table' then return 0 end\n"
    "if s['user'] ~= ARGV[1] or s['host'] ~= ARGV[2] then return 0 end\n"
    "local p = tonumber(ARGV[3])\n"
    "if s['port'] ~= 0 and p ~= 0 and s['port'] ~= p then return 0 end\n"
    "return redis.call('DEL', KEYS[1])\n";

void wd_session_share_new(const struct wd_config *cfg, bool redis_on, struct wd_session_share **out,
                          struct wd_buf *e, int *n)
{
    *out = NULL;
    bool redis = cfg->session_store == WD_CONFIG_SESSION_STORE_REDIS ||
                 (cfg->session_store == WD_CONFIG_SESSION_STORE_AUTO && redis_on);
    if (!redis)
        return;
    if (!redis_on) {
        wd_buf_puts(e, "session_store redis: set redis_host or redis_socket\n");
        (*n)++;
        return;
    }
    const char *pre = cfg->session_redis_prefix ? cfg->session_redis_prefix : "";
    size_t np = strlen(pre);
    if (np == 0) {
        wd_buf_puts(e, "session_redis_prefix: must not be empty\n");
        (*n)++;
        return;
    }
    /* a session key (prefix + clientid, chosen by the client) must never name a user
     * record or an ACL: a SET there would replace a password hash */
    const char *tmpls[] = {cfg->redis_authn_key, cfg->redis_acl_key};
    const char *names[] = {"redis_authn_key", "redis_acl_key"};
    int before = *n;
    for (size_t i = 0; i < 2; i++) {
        size_t nh = tmpls[i] ? wd_redis_tmpl_head(tmpls[i]) : 0;
        if (nh == 0) {
            wd_log_warn("session",
                        "%s starts with a placeholder: a user or ACL key could have the form of "
                        "a session key (%s...)",
                        names[i], pre);
        } else if (memcmp(pre, tmpls[i], np < nh ? np : nh) == 0) {
            wd_buf_printf(e,
                          "session_redis_prefix \"%s\" overlaps %s \"%s\": a client id could "
                          "name a user or ACL key; choose a prefix of its own\n",
                          pre, names[i], tmpls[i]);
            (*n)++;
        }
    }
    if (*n > before)
        return;
    struct wd_session_share *s = wd_calloc(1, sizeof *s);
    s->prefix = wd_strdup(pre);
    s->redis_ttl_ms = cfg->session_redis_ttl_ms;
    *out = s;
}

void wd_session_share_free(struct wd_session_share *s)
{
    if (!s)
        return;
    free(s->prefix);
    free(s);
}

void wd_share_cmd_cleanup(struct wd_share_cmd *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < sizeof c->own / sizeof c->own[0]; i++)
        free(c->own[i]);
    memset(c, 0, sizeof *c);
}

static void arg(struct wd_share_cmd *c, const char *s, size_t len)
{
    c->argv[c->argc] = s;
    c->lens[c->argc] = len;
    c->argc++;
}

/* An argument the command owns (own[slot]). */
static void arg_own(struct wd_share_cmd *c, int slot, char *s, size_t len)
{
    c->own[slot] = s;
    arg(c, s, len);
}

/* prefix + clientid, owned by c (own[0]) */
static void arg_key(struct wd_share_cmd *c, const struct wd_session_share *s, const char *clientid)
{
    size_t np = strlen(s->prefix), nc = strlen(clientid);
    char *k = wd_malloc(np + nc + 1);
    memcpy(k, s->prefix, np);
    memcpy(k + np, clientid, nc + 1);
    arg_own(c, 0, k, np + nc);
}

void wd_session_share_put(const struct wd_session_share *s, struct wd_sessions *t,
                          const char *clientid, const struct wd_session *sess, int64_t end_ms,
                          struct wd_share_cmd *out)
{
    memset(out, 0, sizeof *out);
    int64_t now = wd_sessions_now_ms(t);
    /* never longer than the token (end_ms has exp + leeway and session_ttl in it), nor
     * session_redis_ttl: a replica that died cannot leave a session behind for ever */
    int64_t end = now + s->redis_ttl_ms;
    if (end_ms && end_ms < end)
        end = end_ms;
    struct wd_buf val = {0};
    int er = WD_ERANGE;
    if (sess && end > now) {
        struct wd_session_rec rec;
        wd_session_rec_view(sess, end, &rec);
        er = wd_session_rec_encode(&rec, &val);
        if (er != WD_OK && er != WD_ERANGE)
            wd_log_warn("session", "session of client %s not shared: %s", clientid, wd_rc_str(er));
    }
    if (er != WD_OK) {
        wd_buf_free(&val);
        arg(out, "DEL", 3);
        arg_key(out, s, clientid);
        return;
    }
    arg(out, "SET", 3);
    arg_key(out, s, clientid);
    arg_own(out, 1, val.s, val.len); /* the buffer's bytes are the command's now */
    arg(out, "PX", 2);
    snprintf(out->num, sizeof out->num, "%lld", (long long)(end - now));
    arg(out, out->num, strlen(out->num));
}

void wd_session_share_get(const struct wd_session_share *s, const char *clientid,
                          struct wd_share_cmd *out)
{
    memset(out, 0, sizeof *out);
    arg(out, "GET", 3);
    arg_key(out, s, clientid);
    out->max_len = WD_SESSION_REC_MAX;
}

void wd_session_share_drop(const struct wd_session_share *s, const struct wd_client *c,
                           struct wd_share_cmd *out)
{
    memset(out, 0, sizeof *out);
    arg(out, "EVAL", 4);
    arg(out, DROP_SCRIPT, sizeof DROP_SCRIPT - 1);
    arg(out, "1", 1);
    arg_key(out, s, c->clientid);
    arg(out, c->username, strlen(c->username));
    arg(out, c->peerhost, strlen(c->peerhost));
    snprintf(out->num, sizeof out->num, "%u", (unsigned)c->peerport);
    arg(out, out->num, strlen(out->num));
}

enum wd_share_found wd_session_share_found(struct wd_sessions *t, const struct wd_client *c, int rc,
                                           const struct wd_redis_raw *raw, const char *who,
                                           struct wd_session **out, char *why, size_t cap)
{
    *out = NULL;
    if (cap)
        why[0] = '\0';
    if (rc != WD_OK && rc != WD_ETOOBIG)
        return WD_SHARE_FAILED;
    if (rc == WD_OK && raw->type == WD_REDIS_RAW_NIL) {
        wd_sessions_note_miss(t, c);
        return WD_SHARE_NONE;
    }
    struct wd_session_rec rec;
    int dr = WD_EDECODE;
    if (rc == WD_ETOOBIG)
        snprintf(why, cap, "larger than %d bytes", WD_SESSION_REC_MAX);
    else if (raw->type != WD_REDIS_RAW_STRING)
        snprintf(why, cap, "not a string");
    else
        dr = wd_session_rec_decode(raw->str, raw->len, &rec, why, cap);
    if (dr != WD_OK) {
        wd_sessions_note_miss(t, c);
        return WD_SHARE_REFUSED;
    }
    *out = wd_sessions_adopt(t, c, &rec, who);
    if (*out)
        return WD_SHARE_FOUND;
    wd_sessions_note_miss(t, c); /* another connection's, or ended */
    return WD_SHARE_NONE;
}
