/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools.c: the policy subcommands of the one binary (docs/policy.md):
 *
 *   warden check FILE...         compile each, print diagnostics, exit 1 on errors
 *   warden explain FILE... ...   the decision for one request, and why (for each policy)
 *   warden test FILE.tests...    expected decisions; ends with "N passed, N failed"
 *   warden import-acl FILE       EMQX acl.conf -> warden policy
 *   warden passwd                make a password secret for a policy file
 *
 * They use the same compiler and evaluators as the server (the engine's authentication
 * chain, the policy's trie), so a policy that passes its tests here decides the same
 * way in production.
 *
 * Every subcommand answers --help (its usage on stdout, exit 0) and --version; a usage
 * error prints the usage on stderr and exits 2. A file whose name starts with '-' is given
 * after `--`.
 */
#include "tools.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "core/file.h"
#include "core/wd.h"
#include "engine/aclrules.h"
#include "engine/engine.h"
#include "engine/jwtident.h"
#include "policy/import.h"
#include "policy/lex.h"
#include "policy/policy.h"
#include "store/jwt.h"
#include "store/passwd.h"
#include "store/redis_acl.h"

#ifndef WD_VERSION
#define WD_VERSION "0.0.0"
#endif

int wd_tool_std_flag(const char *arg, const char *usage)
{
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
        printf("warden %s\n", WD_VERSION);
        return 0;
    }
    return -1;
}

/* Collects the file operands of check/test/import-acl into files[] (at most max): --help and
 * --version are answered, another option is a usage error, `--` ends the options. Returns
 * -1 to go on (*n set), else the exit status. */
static int file_args(int argc, char **argv, const char *usage, const char **files, int max, int *n)
{
    bool opts = true;
    *n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts && strcmp(a, "--") == 0) {
            opts = false;
            continue;
        }
        if (opts && a[0] == '-' && a[1]) {
            int rc = wd_tool_std_flag(a, usage);
            if (rc >= 0)
                return rc;
            fprintf(stderr, "warden %s: unknown option '%s'\n%s", argv[0], a, usage);
            return 2;
        }
        if (*n == max) {
            fprintf(stderr, "warden %s: too many files\n%s", argv[0], usage);
            return 2;
        }
        files[(*n)++] = a;
    }
    if (*n == 0) {
        fputs(usage, stderr);
        return 2;
    }
    return -1;
}

/* Reads a whole file (at most max bytes), reporting failures on stderr. */
static char *slurp(const char *path, size_t max, size_t *len)
{
    char *buf, err[512];
    if (wd_file_read(path, max, &buf, len, err, sizeof err) != WD_OK) {
        fprintf(stderr, "warden: %s\n", err);
        return NULL;
    }
    return buf;
}

/* The text of 1-based line `line` of src (for showing the deciding rule). */
static void print_line(const char *src, unsigned line)
{
    const char *p = src;
    for (unsigned l = 1; p && l < line; l++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p)
        return;
    const char *e = strchr(p, '\n');
    int n = e ? (int)(e - p) : (int)strlen(p);
    printf("    %u | %.*s\n", line, n > 200 ? 200 : n, p);
}

/* ---- check ---- */

static const char check_usage[] =
    "usage: warden check [--] FILE...\n"
    "  compile each policy file and print its diagnostics; \"FILE: ok (N rules, N users)\"\n"
    "  for each that compiles. Exit status: 0 all compile, 1 one or more do not (or cannot\n"
    "  be read), 2 bad usage.\n";

int wd_tool_check(int argc, char **argv)
{
    const char *files[256];
    int n, ex = file_args(argc, argv, check_usage, files, (int)WD_ARRAY_LEN(files), &n);
    if (ex >= 0)
        return ex;
    for (int i = 0; i < n; i++) {
        struct wd_policy *p;
        char *report;
        int rc = wd_engine_load_policy(files[i], &p, &report);
        if (report)
            fputs(report, stderr);
        free(report);
        if (rc != WD_OK) {
            ex = 1; /* the report names the file */
            continue;
        }
        printf("%s: ok (%zu rules, %zu users)\n", files[i], wd_policy_nrules(p),
               wd_policy_nusers(p));
        wd_policy_release(p);
    }
    return ex < 0 ? 0 : ex;
}

/* ---- request building, shared by explain and test ---- */

struct request {
    bool authn;
    enum wd_action action;
    const char *topic;
    struct wd_client c;
    const char *password;
    bool has_password; /* publish/subscribe: the client authenticated with it (the chain runs) */
    int superuser;     /* -1: not stated; 0/1: what the store that authenticated it said */
    int step;          /* -1: not stated; WD_STEP_REDIS or WD_STEP_JWT: the store step that
                          admitted the client (the chain runs, that step answering allow) */
    struct wd_jwt_ident *jwt;    /* `claims`: the token it authenticated with (owned) */
    struct wd_policy *redis_acl; /* `redis_acl`: its Redis ACL, compiled (owned) */
    int qos, retain;
};

static void request_init(struct request *r)
{
    memset(r, 0, sizeof *r);
    r->c.node = r->c.clientid = r->c.username = r->c.peerhost = r->c.protocol = "";
    r->c.mountpoint = r->c.cn = r->c.dn = "";
    r->password = "";
    r->topic = "";
    r->qos = -1;
    r->retain = -1;
    r->superuser = -1;
    r->step = -1;
}

static void request_cleanup(struct request *r)
{
    wd_jwt_ident_release(r->jwt);
    wd_policy_release(r->redis_acl);
    r->jwt = NULL;
    r->redis_acl = NULL;
}

/* Why a field's value was refused; line and col (1-based, 0: unknown) point into a JSON
 * value at what jansson or a rule complained about. */
struct set_err {
    char msg[256];
    int line, col;
};

/* The first reason a stated store rule is skipped: a case states exactly what the store
 * holds, so an entry warden would skip is the case's mistake, reported as an error. */
struct first_skip {
    const char *what;
    struct set_err *e;
    bool seen;
};

static void skip_policy_rule(void *ud, size_t index, const char *why)
{
    struct first_skip *f = ud;
    if (!f->seen)
        snprintf(f->e->msg, sizeof f->e->msg, "%s: entry %zu would be skipped: %s", f->what,
                 index + 1, why);
    f->seen = true;
}

static void skip_redis_entry(void *ud, const char *topic, size_t topic_len, const char *reason)
{
    struct first_skip *f = ud;
    if (!f->seen)
        snprintf(f->e->msg, sizeof f->e->msg, "redis_acl: entry \"%.*s\" would be skipped: %s",
                 topic_len > 64 ? 64 : (int)topic_len, topic ? topic : "", reason);
    f->seen = true;
}

/* `claims`: the payload of the token the client authenticated with, read as the JWT
 * verifier reads a verified token's (claims, is_superuser, the `acl` claim). */
static bool set_claims(struct request *r, const char *v, struct set_err *e)
{
    struct wd_jwt_result res;
    struct wd_jwt_json_error je;
    if (wd_jwt_result_from_claims(v, strlen(v), "acl", &res, &je) != WD_OK) {
        snprintf(e->msg, sizeof e->msg, "claims: invalid JSON: %s", je.text);
        e->line = je.line;
        e->col = je.column;
        return false;
    }
    if (res.n_acl_skipped) {
        snprintf(e->msg, sizeof e->msg, "claims: warden would skip (part of) the ACL claim: %s",
                 res.n_acl_errors ? res.acl_errors[0] : "too many rules");
        wd_jwt_result_cleanup(&res);
        return false;
    }
    /* a topic the policy compiler refuses would be skipped (and logged) by the daemon */
    struct first_skip f = {"claims: acl", e, false};
    struct wd_policy *chk = wd_acl_rules_compile(res.acl, res.n_acl, skip_policy_rule, &f);
    wd_policy_release(chk);
    if (f.seen || !chk) {
        if (!f.seen)
            snprintf(e->msg, sizeof e->msg, "claims: the ACL claim cannot be compiled");
        wd_jwt_result_cleanup(&res);
        return false;
    }
    struct wd_jwt_ident *j = NULL;
    if (wd_jwt_ident_new(&res, "the test case", 0, &j) != WD_OK) { /* takes res either way */
        snprintf(e->msg, sizeof e->msg, "claims: the token would be refused");
        return false;
    }
    wd_jwt_ident_release(r->jwt);
    r->jwt = j;
    return true;
}

/* `redis_acl`: the client's Redis ACL hash as a JSON object, field (topic) -> value
 * ("publish", "subscribe", "all", or a rule object), read by the same parser as a reply of
 * HGETALL (redis_acl.h, emqx_acl.h) and compiled as the Redis source compiles it. */
static bool set_redis_acl(struct request *r, const char *v, struct set_err *e)
{
    json_error_t je;
    json_t *o = json_loadb(v, strlen(v), JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        if (o)
            snprintf(e->msg, sizeof e->msg,
                     "redis_acl: a JSON object of topic: rule (the user's ACL hash)");
        else
            snprintf(e->msg, sizeof e->msg, "redis_acl: invalid JSON: %s", je.text);
        e->line = o ? 1 : je.line;
        e->col = o ? 1 : je.column;
        json_decref(o);
        return false;
    }
    size_t n = json_object_size(o), i = 0;
    struct wd_redis_acl_pair *pairs = wd_calloc(n ? n : 1, sizeof *pairs);
    char **owned = wd_calloc(n ? n : 1, sizeof *owned);
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        pairs[i].field = key;
        pairs[i].field_len = strlen(key);
        if (json_is_string(val)) {
            pairs[i].value = json_string_value(val);
            pairs[i].value_len = json_string_length(val);
        } else {
            owned[i] = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
            pairs[i].value = owned[i] ? owned[i] : "";
            pairs[i].value_len = strlen(pairs[i].value);
        }
        i++;
    }
    struct first_skip f = {"redis_acl", e, false};
    struct wd_acl_entry *ents = NULL;
    size_t nents = 0;
    wd_redis_acl_parse(pairs, n, &ents, &nents, skip_redis_entry, &f);
    struct wd_policy *acl = f.seen ? NULL : wd_acl_rules_compile(ents, nents, skip_policy_rule, &f);
    wd_acl_entries_free(ents, nents);
    for (size_t k = 0; k < n; k++)
        free(owned[k]);
    free(owned);
    free(pairs);
    json_decref(o);
    if (!acl || f.seen) {
        if (!f.seen)
            snprintf(e->msg, sizeof e->msg, "redis_acl: cannot be compiled");
        wd_policy_release(acl);
        return false;
    }
    wd_policy_release(r->redis_acl);
    r->redis_acl = acl;
    return true;
}

/* Sets one request field; returns false for an unknown name or bad value. */
static bool request_set(struct request *r, const char *k, const char *v, struct set_err *e)
{
    size_t cap = sizeof e->msg;
    char *err = e->msg;
    e->line = e->col = 0;
    if (strcmp(k, "username") == 0)
        r->c.username = v;
    else if (strcmp(k, "clientid") == 0)
        r->c.clientid = v;
    else if (strcmp(k, "password") == 0) {
        r->password = v;
        r->has_password = true;
    } else if (strcmp(k, "cn") == 0)
        r->c.cn = v;
    else if (strcmp(k, "protocol") == 0)
        r->c.protocol = v;
    else if (strcmp(k, "peer") == 0 || strcmp(k, "peerhost") == 0)
        r->c.peerhost = v;
    else if (strcmp(k, "topic") == 0)
        r->topic = v;
    else if (strcmp(k, "port") == 0 || strcmp(k, "qos") == 0) {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        bool port = k[0] == 'p';
        if (errno || *end || !*v || n < 0 || n > (port ? 65535 : 2)) {
            snprintf(err, cap, "bad %s '%s'", k, v);
            return false;
        }
        if (port)
            r->c.sockport = (uint32_t)n;
        else
            r->qos = (int)n;
    } else if (strcmp(k, "retain") == 0 || strcmp(k, "superuser") == 0) {
        int *f = k[0] == 'r' ? &r->retain : &r->superuser;
        if (strcmp(v, "true") == 0)
            *f = 1;
        else if (strcmp(v, "false") == 0)
            *f = 0;
        else {
            snprintf(err, cap, "%s must be true or false", k);
            return false;
        }
    } else if (strcmp(k, "authn") == 0) {
        if (strcmp(v, "redis") == 0)
            r->step = WD_STEP_REDIS;
        else if (strcmp(v, "jwt") == 0)
            r->step = WD_STEP_JWT;
        else {
            snprintf(err, cap,
                     "authn takes redis or jwt (the store step that admitted the client), not "
                     "'%.40s'; for authn users give the password",
                     v);
            return false;
        }
    } else if (strcmp(k, "claims") == 0) {
        return set_claims(r, v, e);
    } else if (strcmp(k, "redis_acl") == 0 || strcmp(k, "redis-acl") == 0) {
        return set_redis_acl(r, v, e);
    } else if (strcmp(k, "action") == 0) {
        if (strcmp(v, "publish") == 0) {
            r->action = WD_ACTION_PUBLISH;
            r->authn = false;
        } else if (strcmp(v, "subscribe") == 0) {
            r->action = WD_ACTION_SUBSCRIBE;
            r->authn = false;
        } else if (strcmp(v, "authn") == 0 || strcmp(v, "authenticate") == 0) {
            r->authn = true;
        } else {
            snprintf(err, cap, "action must be publish, subscribe or authn");
            return false;
        }
    } else {
        snprintf(err, cap, "unknown request field '%s'", k);
        return false;
    }
    return true;
}

/* A request's fields that do not go together; NULL when they do. */
static const char *request_conflict(const struct request *r)
{
    if (r->superuser >= 0 && r->authn)
        return "superuser is for publish and subscribe (authentication decides it)";
    if ((r->jwt || r->redis_acl) && r->authn)
        return "claims and redis_acl are for publish and subscribe (authentication does not "
               "read them)";
    if (r->jwt && r->step != WD_STEP_JWT)
        return "claims need authn jwt (only a token carries claims)";
    if (r->superuser >= 0 && r->step == WD_STEP_JWT)
        return "with authn jwt the token says who is a superuser: put \"is_superuser\": true "
               "in claims";
    if (r->superuser >= 0 && r->has_password && r->step < 0)
        return "give password (the chain decides who is a superuser) or superuser (what a "
               "store said), not both";
    return NULL;
}

static const char *step_word(int step)
{
    return step == WD_STEP_REDIS ? "redis" : "jwt";
}

/* The stand-in for the store step a request states (NULL: none). */
static const struct wd_authn_standin *standin_of(const struct request *r,
                                                 struct wd_authn_standin *si)
{
    if (r->step < 0)
        return NULL;
    si->step = (enum wd_authn_step)r->step;
    si->superuser = r->step == WD_STEP_JWT ? r->jwt && r->jwt->res.is_superuser : r->superuser == 1;
    return si;
}

enum admitted {
    ADMITTED,   /* goes on to publish/subscribe */
    REFUSED,    /* the chain denied: the client never gets to publish/subscribe */
    OTHER_STEP, /* a store step was stated but something else decided the chain */
};

/* Who the client of a publish/subscribe request is, as a session would say: with a
 * password or a stated store step, the chain runs first and the step that allowed it says
 * whether it is a superuser (and, for authn jwt, brings the token's claims); NOMATCH
 * without a stated step: EMQX may let it in, but warden made it nothing. Otherwise the
 * request's `superuser` field. *v is the chain's verdict when it ran. */
static enum admitted authenticate_first(const struct wd_policy *p, struct request *r,
                                        struct wd_verdict *v)
{
    if (r->authn || (!r->has_password && r->step < 0)) {
        r->c.is_superuser = r->superuser == 1;
        return ADMITTED;
    }
    struct wd_authn_req a = {
        .client = r->c, .password = r->password, .password_len = strlen(r->password)};
    struct wd_authn_standin si;
    bool su = false;
    wd_engine_authn_with(p, &a, standin_of(r, &si), v, &su);
    r->c.is_superuser = su;
    if (r->step >= 0) {
        if (v->decision != WD_DECISION_ALLOW || !v->step || strcmp(v->step, step_word(r->step)))
            return OTHER_STEP;
        if (r->step == WD_STEP_JWT)
            wd_jwt_ident_bind_claims(r->jwt, &r->c);
    }
    return v->decision == WD_DECISION_DENY ? REFUSED : ADMITTED;
}

/* The stores a request states, as rule sources: `rules redis` answers from its redis_acl,
 * `rules jwt` from the token's ACL claim when authn jwt admitted it (a client admitted by
 * Redis has no token: nothing to say). */
static int case_source(void *ctx, enum wd_source src, const struct wd_authz_req *req,
                       struct wd_policy_result *out)
{
    const struct request *r = ctx;
    if (src == WD_SOURCE_REDIS) {
        if (!r->redis_acl)
            return 0;
        struct wd_policy_result res;
        wd_policy_authorize(r->redis_acl, req, &res);
        if (res.decision == WD_DECISION_NOMATCH)
            return 0;
        out->decision = res.decision;
        return 1;
    }
    if (r->step != WD_STEP_JWT)
        return 0;
    const char *why;
    return wd_jwt_ident_authorize(r->jwt, req, out, &why);
}

/* The rule sources of a request: none (a store is consulted nowhere, as before) unless the
 * request states one. */
static const struct wd_policy_sources *sources_of(const struct request *r,
                                                  struct wd_policy_sources *s)
{
    if (r->step < 0 && !r->redis_acl)
        return NULL;
    s->eval = case_source;
    s->ctx = (void *)r;
    return s;
}

static struct wd_authz_req authz_req_of(const struct request *r)
{
    return (struct wd_authz_req){.client = r->c,
                                 .action = r->action,
                                 .topic = r->topic,
                                 .topic_len = strlen(r->topic),
                                 .qos = r->qos,
                                 .retain = r->retain};
}

/* Call authenticate_first() before, for publish and subscribe. */
static void decide(const struct wd_policy *p, const struct request *r, struct wd_verdict *v)
{
    if (r->authn) {
        struct wd_authn_req a = {
            .client = r->c, .password = r->password, .password_len = strlen(r->password)};
        struct wd_authn_standin si;
        wd_engine_authn_with(p, &a, standin_of(r, &si), v, NULL);
        return;
    }
    struct wd_authz_req z = authz_req_of(r);
    struct wd_policy_sources s;
    struct wd_policy_result res;
    wd_policy_authorize_src(p, &z, sources_of(r, &s), &res);
    v->decision = res.decision;
    v->line = res.line;
    v->reason = res.by_default ? "default" : "rule";
}

/* ---- explain ---- */

struct explain_ctx {
    const char *src;
    const char *file;
};

static void explain_step(void *ctx, unsigned line, bool decided, const char *why)
{
    struct explain_ctx *x = ctx;
    if (decided && !line) {
        printf("decided without a rule (%s)\n", why); /* implicit default, invalid topic */
    } else if (decided) {
        printf("decided by %s:%u (%s)\n", x->file, line, why);
        print_line(x->src, line);
    } else {
        printf("  %s:%u: no: %s\n", x->file, line, why);
    }
}

static const char explain_usage[] =
    "usage: warden explain FILE... --action publish|subscribe|authn [--topic T]\n"
    "         [--username U] [--clientid C] [--password P] [--peer A] [--port N] [--cn CN]\n"
    "         [--protocol P] [--qos N] [--retain true|false] [--superuser true|false]\n"
    "         [--authn redis|jwt] [--claims JSON] [--redis-acl JSON]\n"
    "  the decision of policy FILE for one request, and the rules that led to it; with\n"
    "  several files, the same request for each (\"== FILE\" before each: an old and a new\n"
    "  policy side by side).\n"
    "  publish/subscribe: with --password the authentication chain runs first and decides\n"
    "  superuser; --superuser states what a store said.\n"
    "  --authn redis|jwt: that store step admitted the client (the chain runs first, the\n"
    "  step answering allow; with redis, --superuser is its is_superuser). --claims: the\n"
    "  payload of its token (with --authn jwt): ${claim.NAME}, is_superuser and the acl\n"
    "  claim for `rules jwt`. --redis-acl: the user's Redis ACL hash as a JSON object of\n"
    "  topic: rule (\"publish\", \"subscribe\", \"all\" or a rule object), for `rules redis`.\n"
    "  No store is consulted: without these, `authn redis|jwt` never answers and `rules\n"
    "  redis|jwt` never matches.\n"
    "  Exit status: 0 explained, 1 a policy does not compile or the client never gets to\n"
    "  publish/subscribe, 2 bad usage.\n";

static int explain_one(const char *file, struct request r);

int wd_tool_explain(int argc, char **argv)
{
    if (argc >= 2 && wd_tool_std_flag(argv[1], explain_usage) == 0)
        return 0;
    if (argc < 2 || argv[1][0] == '-') {
        fputs(explain_usage, stderr);
        return 2;
    }
    /* the files, up to the first --FIELD */
    int nfiles = 1;
    while (nfiles + 1 < argc && argv[nfiles + 1][0] != '-')
        nfiles++;
    struct request r;
    request_init(&r);
    r.action = WD_ACTION_PUBLISH;
    bool have_action = false;
    for (int i = 1 + nfiles; i < argc; i++) {
        if (wd_tool_std_flag(argv[i], explain_usage) == 0) {
            request_cleanup(&r);
            return 0;
        }
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "warden explain: expected --FIELD VALUE, got '%s'\n", argv[i]);
            request_cleanup(&r);
            return 2;
        }
        have_action = have_action || strcmp(argv[i] + 2, "action") == 0;
        for (int j = 1 + nfiles; j < i; j += 2)
            if (strcmp(argv[j], argv[i]) == 0) {
                fprintf(stderr, "warden explain: %s given twice\n", argv[i]);
                request_cleanup(&r);
                return 2;
            }
        struct set_err e;
        if (!request_set(&r, argv[i] + 2, argv[i + 1], &e)) {
            if (e.line)
                fprintf(stderr, "warden explain: %s: %s (at line %d, column %d of its value)\n",
                        argv[i], e.msg, e.line, e.col);
            else
                fprintf(stderr, "warden explain: %s\n", e.msg);
            request_cleanup(&r);
            return 2;
        }
        i++;
    }
    const char *bad = !have_action              ? "--action publish|subscribe|authn is required"
                      : !r.authn && !r.topic[0] ? "--topic is required for publish and subscribe"
                                                : request_conflict(&r);
    if (bad) {
        fprintf(stderr, "warden explain: %s\n", bad);
        request_cleanup(&r);
        return 2;
    }
    int ex = 0;
    for (int i = 1; i <= nfiles; i++) {
        if (nfiles > 1)
            printf("%s== %s\n", i > 1 ? "\n" : "", argv[i]);
        if (explain_one(argv[i], r) != 0)
            ex = 1;
    }
    request_cleanup(&r);
    return ex;
}

/* One policy's decision for r (a copy: authentication may make it a superuser). 0 or 1. */
static int explain_one(const char *file, struct request r)
{
    struct wd_policy *p;
    char *report;
    int rc = wd_engine_load_policy(file, &p, &report);
    if (rc != WD_OK) {
        if (report)
            fputs(report, stderr);
        free(report);
        return 1;
    }
    free(report);
    size_t len;
    char *src = slurp(file, WD_POLICY_MAX_BYTES, &len);
    struct explain_ctx x = {src ? src : "", file};
    struct wd_verdict v;
    memset(&v, 0, sizeof v);
    enum admitted adm = authenticate_first(p, &r, &v);
    if (r.authn || adm != ADMITTED) {
        if (r.authn)
            decide(p, &r, &v);
        printf("authn username=\"%s\"", r.c.username);
        if (r.step >= 0)
            printf(" (stated: authn %s admits it)", step_word(r.step));
        printf(": %s (%s)", wd_decision_str(v.decision), v.reason);
        if (adm == OTHER_STEP)
            printf(": not admitted by authn %s", step_word(r.step));
        if (adm != ADMITTED)
            printf(": the client never gets to %s",
                   r.action == WD_ACTION_PUBLISH ? "publish" : "subscribe");
        printf("\n");
        if (v.line) {
            printf("decided by %s:%u\n", file, v.line);
            print_line(x.src, v.line);
        }
        if (adm != ADMITTED)
            rc = WD_EINVAL;
    } else {
        if (r.has_password || r.step >= 0)
            printf("authn username=\"%s\": %s (%s, %s:%u): %s\n", r.c.username,
                   wd_decision_str(v.decision), v.reason, file, v.line,
                   r.c.is_superuser ? "a superuser" : "not a superuser");
        struct wd_authz_req z = authz_req_of(&r);
        struct wd_policy_sources s;
        struct wd_policy_result res;
        printf("%s \"%s\" username=\"%s\" clientid=\"%s\"\n",
               r.action == WD_ACTION_PUBLISH ? "publish" : "subscribe", r.topic, r.c.username,
               r.c.clientid);
        wd_policy_explain_authorize_src(p, &z, sources_of(&r, &s), explain_step, &x, &res);
        printf("decision: %s\n", wd_decision_str(res.decision));
        /* the served path (trie) must agree with the explained one (linear) */
        decide(p, &r, &v);
        if (v.decision != res.decision || v.line != res.line) {
            fprintf(stderr,
                    "warden explain: internal error: evaluators disagree (%s:%u vs "
                    "%s:%u); please report this policy and request\n",
                    wd_decision_str(v.decision), v.line, wd_decision_str(res.decision), res.line);
            rc = 1;
        }
    }
    free(src);
    wd_policy_release(p);
    return rc == WD_OK ? 0 : 1;
}

/* ---- test ---- */

static bool decision_word(const struct wd_token *t, enum wd_decision *d)
{
    if (t->kind != WD_TOK_WORD)
        return false;
    if (strcmp(t->text, "allow") == 0)
        *d = WD_DECISION_ALLOW;
    else if (strcmp(t->text, "deny") == 0)
        *d = WD_DECISION_DENY;
    else if (strcmp(t->text, "nomatch") == 0)
        *d = WD_DECISION_NOMATCH;
    else
        return false;
    return true;
}

static const char test_usage[] =
    "usage: warden test [--] FILE.tests...\n"
    "  run policies' test cases (docs/policy.md \"Test files\"); prints a FAIL line\n"
    "  for each case that fails, then \"N passed, N failed\" (with several files, that line\n"
    "  for each file, after its name, and then the totals). Exit status: 0 all passed,\n"
    "  1 a case failed (or a file has none), 2 a tests file is malformed or unreadable, or\n"
    "  bad usage.\n"
    "  A case:  allow|deny|nomatch authn|publish \"T\"|subscribe \"T\" [FIELD VALUE]...\n"
    "  FIELD: username clientid password cn protocol peer port qos retain superuser rule,\n"
    "  and for a client a store admitted (no store is consulted):\n"
    "    authn redis|jwt        that step admitted it (the chain runs, the step allowing)\n"
    "    claims {JSON}          with authn jwt: its token's payload (claims, is_superuser,\n"
    "                           the acl claim for `rules jwt`)\n"
    "    redis_acl {JSON}       its Redis ACL hash, topic: rule, for `rules redis`\n"
    "  A case continues on the next line when that line is indented.\n";

static int test_one(const char *path, int *passed_out, int *failed_out);

int wd_tool_test(int argc, char **argv)
{
    const char *files[256];
    int nfiles, ex = file_args(argc, argv, test_usage, files, (int)WD_ARRAY_LEN(files), &nfiles);
    if (ex >= 0)
        return ex;
    int passed = 0, failed = 0, worst = 0;
    for (int i = 0; i < nfiles; i++) {
        int p = 0, f = 0;
        int rc = test_one(files[i], &p, &f);
        if (rc == 0 && (f || !p))
            rc = 1;
        worst = rc > worst ? rc : worst;
        passed += p;
        failed += f;
        if (nfiles > 1)
            printf("%s: %d passed, %d failed\n", files[i], p, f);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return worst;
}

/* Runs one tests file: its FAIL lines and diagnostics are printed, its counts returned.
 * Returns 0, or 2 when the file is unreadable or malformed. */
static int test_one(const char *path, int *passed_out, int *failed_out)
{
    *passed_out = *failed_out = 0;
    size_t len;
    char *src = slurp(path, WD_POLICY_MAX_BYTES, &len);
    if (!src)
        return 2;
    struct wd_diags d;
    wd_diags_init(&d, path, src, len);
    struct wd_arena strings;
    wd_arena_init(&strings);
    struct wd_tokens toks;
    wd_lex_ex(src, len, &d, &strings, &toks, WD_LEX_JSON);
    /* a case continues on the next line when that line is indented: drop the line break
     * before an indented token that follows a case's tokens directly */
    size_t o = 0;
    for (size_t j = 0; j < toks.n; j++) {
        const struct wd_token *nx = j + 1 < toks.n ? &toks.v[j + 1] : NULL;
        if (toks.v[j].kind == WD_TOK_NEWLINE && nx && nx->kind != WD_TOK_NEWLINE &&
            nx->kind != WD_TOK_EOF && nx->col > 1 && o > 0 && toks.v[o - 1].kind != WD_TOK_NEWLINE)
            continue;
        toks.v[o++] = toks.v[j];
    }
    toks.n = o;

    int passed = 0, failed = 0;
    struct wd_policy *p = NULL;
    char *policy_src = NULL;
    char *policy_path = NULL;
    size_t i = 0;
    while (toks.v[i].kind != WD_TOK_EOF) {
        const struct wd_token *t = &toks.v[i];
        if (t->kind == WD_TOK_NEWLINE) {
            i++;
            continue;
        }
        size_t start = i;
        while (toks.v[i].kind != WD_TOK_NEWLINE && toks.v[i].kind != WD_TOK_EOF)
            i++;
        size_t end = i; /* tokens [start, end) are this line */
        unsigned line = t->line;
        if (t->kind == WD_TOK_WORD && strcmp(t->text, "policy") == 0) {
            if (end - start != 2 || toks.v[start + 1].kind != WD_TOK_STRING) {
                wd_diag_add(&d, WD_DIAG_ERROR, line, t->col, "usage: policy \"FILE\"");
                continue;
            }
            if (p) {
                wd_diag_add(&d, WD_DIAG_ERROR, line, t->col, "only one policy per test file");
                continue;
            }
            /* relative to the tests file */
            const char *rel = toks.v[start + 1].text;
            const char *slash = strrchr(path, '/');
            size_t dl = slash && rel[0] != '/' ? (size_t)(slash - path + 1) : 0;
            policy_path = wd_malloc(dl + strlen(rel) + 1);
            memcpy(policy_path, path, dl);
            memcpy(policy_path + dl, rel, strlen(rel) + 1);
            char *report;
            if (wd_engine_load_policy(policy_path, &p, &report) != WD_OK) {
                if (report)
                    fputs(report, stderr);
                free(report);
                wd_diag_add(&d, WD_DIAG_ERROR, line, toks.v[start + 1].col,
                            "policy %s does not compile", policy_path);
                break;
            }
            free(report);
            policy_src = slurp(policy_path, WD_POLICY_MAX_BYTES, &len);
            continue;
        }
        enum wd_decision want;
        if (!decision_word(t, &want)) {
            wd_diag_add(&d, WD_DIAG_ERROR, line, t->col,
                        "expected 'policy' or a decision (allow, deny, nomatch)");
            continue;
        }
        if (!p) {
            wd_diag_add(&d, WD_DIAG_ERROR, line, t->col,
                        "no 'policy \"FILE\"' line before the "
                        "first case");
            break;
        }
        struct request r;
        request_init(&r);
        size_t k = start + 1;
        const struct wd_token *kind = &toks.v[k];
        if (k < end && kind->kind == WD_TOK_WORD && strcmp(kind->text, "authn") == 0) {
            r.authn = true;
            k++;
        } else if (k < end && kind->kind == WD_TOK_WORD &&
                   (strcmp(kind->text, "publish") == 0 || strcmp(kind->text, "subscribe") == 0)) {
            r.action = kind->text[0] == 'p' ? WD_ACTION_PUBLISH : WD_ACTION_SUBSCRIBE;
            k++;
            if (k >= end || toks.v[k].kind != WD_TOK_STRING) {
                wd_diag_add(&d, WD_DIAG_ERROR, line, kind->col, "expected a topic string");
                continue;
            }
            r.topic = toks.v[k].text;
            k++;
        } else {
            wd_diag_add(&d, WD_DIAG_ERROR, line, kind->col, "expected authn, publish or subscribe");
            continue;
        }
        long want_line = -1; /* -1: not given; 0: the implicit default */
        bool bad = false;
        char numbuf[16][24];
        int nb = 0;
        const char *seen[32]; /* the fields given so far: each at most once */
        size_t nseen = 0;
        while (k < end && !bad) {
            const struct wd_token *f = &toks.v[k];
            if (f->kind != WD_TOK_WORD || k + 1 >= end) {
                wd_diag_add(&d, WD_DIAG_ERROR, line, f->col, "expected FIELD VALUE");
                bad = true;
                break;
            }
            for (size_t q = 0; q < nseen && !bad; q++)
                bad = strcmp(seen[q], f->text) == 0;
            if (bad) {
                wd_diag_add(&d, WD_DIAG_ERROR, f->line, f->col,
                            "%s given twice: a case states one value per field", f->text);
                break;
            }
            if (nseen < WD_ARRAY_LEN(seen))
                seen[nseen++] = f->text;
            const struct wd_token *v = &toks.v[k + 1];
            if (strcmp(f->text, "rule") == 0) {
                if (v->kind != WD_TOK_NUMBER || v->num < 0) {
                    wd_diag_add(&d, WD_DIAG_ERROR, line, v->col,
                                "rule takes a line number (0: the implicit default)");
                    bad = true;
                }
                want_line = v->num;
            } else {
                const char *val = v->text;
                bool json = strcmp(f->text, "claims") == 0 || strcmp(f->text, "redis_acl") == 0;
                if (v->kind == WD_TOK_NUMBER && nb < 16) {
                    snprintf(numbuf[nb], sizeof numbuf[nb], "%ld", v->num);
                    val = numbuf[nb++];
                } else if (v->kind == WD_TOK_WORD &&
                           (strcmp(v->text, "true") == 0 || strcmp(v->text, "false") == 0 ||
                            strcmp(f->text, "authn") == 0)) {
                    val = v->text;
                } else if (v->kind == WD_TOK_ERROR) {
                    bad = true; /* the lexer said why */
                    break;
                } else if (v->kind == WD_TOK_JSON && !json) {
                    wd_diag_add(&d, WD_DIAG_ERROR, v->line, v->col,
                                "a JSON object is the value of claims and redis_acl only");
                    bad = true;
                    break;
                } else if (v->kind != WD_TOK_STRING && v->kind != WD_TOK_JSON) {
                    if (json)
                        wd_diag_add(&d, WD_DIAG_ERROR, v->line, v->col,
                                    "expected a JSON object {...}");
                    else if (v->kind == WD_TOK_WORD)
                        wd_diag_add(&d, WD_DIAG_ERROR, v->line, v->col,
                                    "expected a \"string\", a number, true or false, not '%s'",
                                    v->text);
                    else
                        wd_diag_add(&d, WD_DIAG_ERROR, v->line, v->col, "expected a value");
                    bad = true;
                    break;
                }
                struct set_err e;
                if (!request_set(&r, f->text, val, &e)) {
                    /* a position inside a JSON object as written is a position in the file */
                    unsigned el = v->line, ec = v->col;
                    if (e.line > 0 && v->kind == WD_TOK_JSON) {
                        el = v->line + (unsigned)e.line - 1;
                        ec = e.line == 1 ? v->col + (unsigned)e.col - 1 : (unsigned)e.col;
                    } else if (!json) {
                        ec = f->col;
                    }
                    wd_diag_add(&d, WD_DIAG_ERROR, el, ec, "%s", e.msg);
                    bad = true;
                }
            }
            k += 2;
        }
        if (!bad && request_conflict(&r)) {
            wd_diag_add(&d, WD_DIAG_ERROR, line, t->col, "%s", request_conflict(&r));
            bad = true;
        }
        if (bad) {
            request_cleanup(&r);
            continue;
        }
        struct wd_verdict v;
        memset(&v, 0, sizeof v);
        enum admitted adm = authenticate_first(p, &r, &v);
        if (adm != ADMITTED) {
            failed++;
            if (adm == OTHER_STEP)
                printf("FAIL %s:%u: authn %s does not admit the client: %s by %s:%u (%s): the "
                       "client never gets to %s\n",
                       path, line, step_word(r.step), wd_decision_str(v.decision), policy_path,
                       v.line, v.reason, r.action == WD_ACTION_PUBLISH ? "publish" : "subscribe");
            else
                printf("FAIL %s:%u: the client is refused by %s:%u (%s): the client never "
                       "gets to %s\n",
                       path, line, policy_path, v.line, v.reason,
                       r.action == WD_ACTION_PUBLISH ? "publish" : "subscribe");
            if (v.line && policy_src)
                print_line(policy_src, v.line);
            request_cleanup(&r);
            continue;
        }
        decide(p, &r, &v);
        request_cleanup(&r);
        bool ok = v.decision == want && (want_line < 0 || (long)v.line == want_line);
        if (ok) {
            passed++;
            continue;
        }
        failed++;
        printf("FAIL %s:%u: expected %s", path, line, wd_decision_str(want));
        if (want_line >= 0)
            printf(" by line %ld", want_line);
        printf(", got %s by %s:%u\n", wd_decision_str(v.decision), policy_path, v.line);
        if (v.line && policy_src)
            print_line(policy_src, v.line);
    }
    int rc = 0;
    if (d.nerrors) {
        char *rep = wd_diags_render(&d);
        fputs(rep, stderr);
        free(rep);
        rc = 2;
    }
    *passed_out = passed;
    *failed_out = failed;
    wd_tokens_free(&toks);
    wd_arena_free(&strings);
    wd_diags_cleanup(&d);
    wd_policy_release(p);
    free(policy_src);
    free(policy_path);
    free(src);
    return rc;
}

/* ---- import-acl ---- */

static const char import_usage[] =
    "usage: warden import-acl [--] acl.conf > warden.policy\n"
    "  translate an EMQX acl.conf (Erlang terms) into warden policy rules on stdout;\n"
    "  what cannot be translated is reported on stderr. Exit status: 0 translated,\n"
    "  1 the file has errors, 2 unreadable file or bad usage.\n";

int wd_tool_import_acl(int argc, char **argv)
{
    const char *files[1];
    int nfiles, ex = file_args(argc, argv, import_usage, files, 1, &nfiles);
    if (ex >= 0)
        return ex;
    size_t len;
    char *src = slurp(files[0], WD_POLICY_MAX_BYTES, &len);
    if (!src)
        return 2;
    struct wd_diags d;
    wd_diags_init(&d, files[0], src, len);
    char *out = NULL;
    int rc = wd_import_acl(src, len, &d, &out);
    if (d.n) {
        char *rep = wd_diags_render(&d);
        fputs(rep, stderr);
        free(rep);
    }
    if (rc == WD_OK && out)
        fputs(out, stdout);
    free(out);
    wd_diags_cleanup(&d);
    free(src);
    return rc == WD_OK ? 0 : 1;
}

/* ---- passwd ---- */

/* Reads one password: from the terminal without echo (asked twice), or one line from a
 * pipe. Returns a heap string (wiped by the caller) or NULL. */
static char *read_password(size_t *len)
{
    bool tty = isatty(0);
    char *pw[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    for (int round = 0; round < (tty ? 2 : 1); round++) {
        struct termios old, quiet;
        if (tty) {
            fputs(round ? "again: " : "password: ", stderr);
            tcgetattr(0, &old);
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(0, TCSAFLUSH, &quiet);
        }
        size_t cap = 0;
        ssize_t r = getline(&pw[round], &cap, stdin);
        if (tty) {
            tcsetattr(0, TCSAFLUSH, &old);
            fputc('\n', stderr);
        }
        if (r < 0) {
            free(pw[round]);
            pw[round] = NULL;
            break;
        }
        n[round] = (size_t)r;
        if (n[round] && pw[round][n[round] - 1] == '\n')
            pw[round][--n[round]] = '\0';
    }
    if (tty && pw[0] && pw[1] && (n[0] != n[1] || memcmp(pw[0], pw[1], n[0]) != 0)) {
        fprintf(stderr, "warden passwd: the passwords differ\n");
        OPENSSL_cleanse(pw[0], n[0]);
        OPENSSL_cleanse(pw[1], n[1]);
        free(pw[0]);
        free(pw[1]);
        return NULL;
    }
    if (pw[1]) {
        OPENSSL_cleanse(pw[1], n[1]);
        free(pw[1]);
    }
    *len = n[0];
    return pw[0];
}

static const char passwd_usage[] =
    "usage: warden passwd [--scheme S] [--user NAME] < password\n"
    "  S: bcrypt[:COST] (default), argon2id[:m=KiB,t=N,p=N], pbkdf2[:MAC[:ITER]],\n"
    "     sha256, sha512, sha1, md5 (salt first; add -suffix for salt last), plain\n"
    "  Reads the password from the terminal (no echo, asked twice) or one line\n"
    "  from standard input; prints the secret, or with --user a policy line.\n";

int wd_tool_passwd(int argc, char **argv)
{
    const char *scheme = NULL, *user = NULL;
    for (int i = 1; i < argc; i++) {
        if (wd_tool_std_flag(argv[i], passwd_usage) == 0)
            return 0;
        if ((strcmp(argv[i], "--scheme") == 0 || strcmp(argv[i], "-s") == 0) && i + 1 < argc)
            scheme = argv[++i];
        else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
            user = argv[++i];
        else {
            fputs(passwd_usage, stderr);
            return 2;
        }
    }
    size_t len = 0;
    char *pw = read_password(&len);
    if (!pw) {
        fprintf(stderr, "warden passwd: no password read\n");
        return 1;
    }
    if (scheme && strcmp(scheme, "plain") == 0)
        fprintf(stderr, "warden passwd: warning: plain stores the password itself; "
                        "use a hash outside development\n");
    char *out = NULL;
    int rc = wd_passwd_hash(scheme, pw, len, &out);
    OPENSSL_cleanse(pw, len);
    free(pw);
    if (rc != WD_OK) {
        if (rc == WD_ETOOBIG)
            fprintf(stderr, "warden passwd: bcrypt uses only the first 72 bytes of a password; "
                            "use argon2id or pbkdf2 for longer ones\n");
        else
            fprintf(stderr, "warden passwd: %s\n", wd_rc_str(rc));
        return 1;
    }
    if (user) {
        /* quoted as a policy string */
        fputs("user \"", stdout);
        for (const unsigned char *p = (const unsigned char *)user; *p; p++) {
            if (*p == '"' || *p == '\\')
                printf("\\%c", *p);
            else if (*p < 0x20)
                printf("\\x%02x", *p);
            else
                putchar(*p);
        }
        fputs("\" \"", stdout);
        for (const char *p = out; *p; p++) {
            if (*p == '"' || *p == '\\')
                printf("\\%c", *p);
            else if ((unsigned char)*p < 0x20)
                printf("\\x%02x", (unsigned char)*p);
            else
                putchar(*p);
        }
        fputs("\"\n", stdout);
    } else {
        puts(out);
    }
    wd_passwd_secret_free(out);
    return 0;
}
