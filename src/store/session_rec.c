/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session_rec.c: see session_rec.h. jansson does the JSON; this file decides what a stored
 * session may contain. The value comes from Redis, which other programs (and whoever holds
 * Redis' password) can write: it is parsed as untrusted input, and a record that is not
 * exactly what warden writes is refused whole, never used in part.
 */
#include "store/session_rec.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/wd.h"

#define REC_VERSION 1
#define DEPTH_MAX 4
#define USER_MAX 65535
#define HOST_MAX 255
#define TOPIC_MAX 65535
#define CLAIM_NAME_MAX 255
#define CLAIM_VALUE_MAX 65535

static const char *const sources[] = {NULL, "static", "redis", "jwt", "other"};
static const char *const formats[] = {"none", "v1", "v2", "invalid"}; /* enum wd_jwt_acl_format */

/* ---- encode ---- */

/* Strings go in as they are; one that is not UTF-8 (jansson refuses it: NULL) makes the
 * whole record unencodable rather than altered. */
static json_t *encode_jwt(const struct wd_jwt_result *r)
{
    json_t *rules = json_array(), *claims = json_array();
    bool bad = false;
    for (size_t i = 0; i < r->n_acl && !bad; i++) {
        const struct wd_acl_entry *a = &r->acl[i];
        bad = json_array_append_new(rules, json_pack("[iiiiis]", a->allow ? 1 : 0, (int)a->actions,
                                                     a->eq ? 1 : 0, (int)a->qos_mask, a->retain,
                                                     a->topic)) != 0;
    }
    const char *name, *value;
    for (size_t i = 0; !bad && wd_jwt_result_claim_at(r, i, &name, &value); i++)
        bad = json_array_append_new(claims, json_pack("[ss]", name, value)) != 0;
    if (bad) {
        json_decref(rules);
        json_decref(claims);
        return NULL;
    }
    unsigned f = (unsigned)r->acl_format;
    return json_pack("{s:s,s:o,s:o}", "acl", f < WD_ARRAY_LEN(formats) ? formats[f] : "invalid",
                     "rules", rules, "claims", claims);
}

int wd_session_rec_encode(const struct wd_session_rec *r, struct wd_buf *out)
{
    unsigned src = (unsigned)r->source;
    json_t *o =
        json_pack("{s:i,s:s,s:s,s:i,s:s,s:b,s:I,s:I}", "v", REC_VERSION, "user",
                  r->username ? r->username : "", "host", r->peerhost ? r->peerhost : "", "port",
                  (int)r->peerport, "src", src >= 1 && src <= 4 ? sources[src] : "other", "su",
                  (int)r->superuser, "end", (json_int_t)r->end_ms, "exp", (json_int_t)r->exp);
    if (o && r->has_jwt && json_object_set_new(o, "jwt", encode_jwt(&r->jwt)) != 0) {
        json_decref(o);
        o = NULL;
    }
    if (!o)
        return WD_EINVAL;
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return WD_EINVAL;
    size_t n = strlen(text);
    int rc = WD_ETOOBIG;
    if (n <= WD_SESSION_REC_MAX) {
        wd_buf_put(out, text, n);
        rc = WD_OK;
    }
    free(text);
    return rc;
}

/* ---- decode ---- */

/* Nesting depth of JSON text, strings skipped; stops early past max. Run before jansson
 * parses (its own limit, 2048 levels, is far above what a session has). */
static bool depth_ok(const char *s, size_t n, int max)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > max)
                return false;
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    return true;
}

/* A string field: present, a string without NUL, at most max bytes (min 1 if nonempty). */
static const char *str_field(json_t *j, size_t max, bool nonempty)
{
    if (!json_is_string(j))
        return NULL;
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (n != strlen(s) || n > max || (nonempty && n == 0))
        return NULL;
    return s;
}

static bool int_field(json_t *j, json_int_t lo, json_int_t hi, json_int_t *v)
{
    if (!json_is_integer(j))
        return false;
    *v = json_integer_value(j);
    return *v >= lo && *v <= hi;
}

static int word_index(json_t *j, const char *const *words, size_t n)
{
    const char *s = str_field(j, 16, true);
    for (size_t i = 0; s && i < n; i++)
        if (words[i] && strcmp(s, words[i]) == 0)
            return (int)i;
    return -1;
}

static bool keys_known(json_t *o, const char *const *keys, size_t n)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(k, keys[i]) == 0;
        if (!known)
            return false;
    }
    return true;
}

static const char *decode_rule(json_t *e, struct wd_acl_entry *a)
{
    json_int_t allow, actions, eq, qos, retain;
    if (!json_is_array(e) || json_array_size(e) != 6)
        return "a rule is not a list of 6";
    if (!int_field(json_array_get(e, 0), 0, 1, &allow) ||
        !int_field(json_array_get(e, 1), 1, 3, &actions) ||
        !int_field(json_array_get(e, 2), 0, 1, &eq) ||
        !int_field(json_array_get(e, 3), 1, 7, &qos) ||
        !int_field(json_array_get(e, 4), -1, 1, &retain))
        return "a rule field is out of range";
    const char *topic = str_field(json_array_get(e, 5), TOPIC_MAX, true);
    if (!topic)
        return "a rule topic is not a valid string";
    a->allow = allow == 1;
    a->actions = (unsigned)actions;
    a->eq = eq == 1;
    a->qos_mask = (unsigned)qos;
    a->retain = (int)retain;
    a->topic = wd_strdup(topic);
    return NULL;
}

static const char *decode_jwt(json_t *o, struct wd_jwt_result *r)
{
    static const char *const keys[] = {"acl", "rules", "claims"};
    if (!json_is_object(o) || !keys_known(o, keys, WD_ARRAY_LEN(keys)))
        return "jwt: not an object of acl, rules, claims";
    int f = word_index(json_object_get(o, "acl"), formats, WD_ARRAY_LEN(formats));
    if (f < 0)
        return "jwt.acl: unknown format";
    r->acl_format = (enum wd_jwt_acl_format)f;
    json_t *rules = json_object_get(o, "rules"), *claims = json_object_get(o, "claims");
    if (!json_is_array(rules) || !json_is_array(claims))
        return "jwt: rules or claims is not a list";
    size_t nr = json_array_size(rules), nc = json_array_size(claims);
    if (nr > WD_JWT_ACL_RULES_MAX || nc > WD_JWT_CLAIMS_MAX)
        return "jwt: too many rules or claims";
    if (nr && f != WD_JWT_ACL_V1_OBJECT && f != WD_JWT_ACL_V2_LIST)
        return "jwt: rules without an ACL";
    if (nr)
        r->acl = wd_calloc(nr, sizeof *r->acl);
    for (size_t i = 0; i < nr; i++) {
        const char *why = decode_rule(json_array_get(rules, i), &r->acl[i]);
        if (why)
            return why;
        r->n_acl++;
    }
    for (size_t i = 0; i < nc; i++) {
        json_t *p = json_array_get(claims, i);
        const char *name = json_is_array(p) && json_array_size(p) == 2
                               ? str_field(json_array_get(p, 0), CLAIM_NAME_MAX, true)
                               : NULL;
        const char *value = name ? str_field(json_array_get(p, 1), CLAIM_VALUE_MAX, false) : NULL;
        if (!value)
            return "jwt: a claim is not a [name, text] pair";
        if (wd_jwt_result_add_claim(r, name, value) != WD_OK)
            return "jwt: too many claims";
    }
    return NULL;
}

static const char *decode_obj(json_t *o, struct wd_session_rec *r)
{
    static const char *const keys[] = {"v",  "user", "host", "port", "src",
                                       "su", "end",  "exp",  "jwt"};
    json_int_t v, port, end, exp;
    if (!json_is_object(o))
        return "not a JSON object";
    if (!int_field(json_object_get(o, "v"), REC_VERSION, REC_VERSION, &v))
        return "unknown version";
    if (!keys_known(o, keys, WD_ARRAY_LEN(keys)))
        return "unknown field";
    const char *user = str_field(json_object_get(o, "user"), USER_MAX, false);
    const char *host = str_field(json_object_get(o, "host"), HOST_MAX, false);
    if (!user || !host)
        return "user or host is not a valid string";
    if (!int_field(json_object_get(o, "port"), 0, 65535, &port))
        return "port out of range";
    int src = word_index(json_object_get(o, "src"), sources, WD_ARRAY_LEN(sources));
    if (src < 1)
        return "unknown src";
    json_t *su = json_object_get(o, "su");
    if (!json_is_boolean(su))
        return "su is not a boolean";
    if (json_is_true(su) && src == WD_SESSION_OTHER)
        return "superuser without a credential step";
    if (!int_field(json_object_get(o, "end"), 1, WD_JWT_EXP_MAX * 1000, &end) ||
        !int_field(json_object_get(o, "exp"), 0, WD_JWT_EXP_MAX, &exp))
        return "end or exp out of range";
    json_t *jwt = json_object_get(o, "jwt");
    if ((jwt != NULL) != (src == WD_SESSION_JWT))
        return "jwt present without src jwt, or missing with it";
    r->username = wd_strdup(user);
    r->peerhost = wd_strdup(host);
    r->peerport = (uint32_t)port;
    r->source = (enum wd_session_source)src;
    r->superuser = json_is_true(su);
    r->end_ms = end;
    r->exp = exp;
    if (jwt) {
        r->has_jwt = true;
        r->jwt.exp = exp;
        r->jwt.is_superuser = r->superuser;
        return decode_jwt(jwt, &r->jwt);
    }
    return NULL;
}

int wd_session_rec_decode(const char *text, size_t len, struct wd_session_rec *out, char *err,
                          size_t errcap)
{
    memset(out, 0, sizeof *out);
    if (errcap)
        err[0] = '\0';
    if (len > WD_SESSION_REC_MAX) {
        wd_seterr(err, errcap, "stored session larger than %d bytes", WD_SESSION_REC_MAX);
        return WD_ETOOBIG;
    }
    if (!text || !depth_ok(text, len, DEPTH_MAX)) {
        wd_seterr(err, errcap, "stored session nested too deep");
        return WD_EDECODE;
    }
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        wd_seterr(err, errcap, "stored session is not JSON (%.60s)", je.text);
        return WD_EDECODE;
    }
    const char *why = decode_obj(o, out);
    json_decref(o);
    if (why) {
        wd_seterr(err, errcap, "stored session refused: %s", why);
        wd_session_rec_cleanup(out);
        return WD_EDECODE;
    }
    return WD_OK;
}

void wd_session_rec_cleanup(struct wd_session_rec *r)
{
    if (!r)
        return;
    free(r->username);
    free(r->peerhost);
    wd_jwt_result_cleanup(&r->jwt);
    memset(r, 0, sizeof *r);
}
