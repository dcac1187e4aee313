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
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "core/file.h"
#include "core/wd.h"
#include "engine/engine.h"
#include "policy/import.h"
#include "policy/lex.h"
#include "policy/policy.h"
#include "store/passwd.h"

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
}

/* Sets one request field; returns false for an unknown name or bad value. */
static bool request_set(struct request *r, const char *k, const char *v, char *err, size_t cap)
{
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
    if (r->superuser >= 0 && r->has_password)
        return "give password (the chain decides who is a superuser) or superuser (what a "
               "store said), not both";
    return NULL;
}

/* Who the client of a publish/subscribe request is, as a session would say: with a
 * password, the chain runs first and the step that allowed it says whether it is a
 * superuser (NOMATCH: EMQX may let it in, but warden made it nothing); otherwise the
 * request's `superuser` field. False when the chain denies: the client never gets to
 * authorize (*v is the chain's verdict then). */
static bool authenticate_first(const struct wd_policy *p, struct request *r, struct wd_verdict *v)
{
    if (r->authn || !r->has_password) {
        r->c.is_superuser = r->superuser == 1;
        return true;
    }
    struct wd_authn_req a = {
        .client = r->c, .password = r->password, .password_len = strlen(r->password)};
    bool su = false;
    wd_engine_authn_with(p, &a, v, &su);
    r->c.is_superuser = su;
    return v->decision != WD_DECISION_DENY;
}

/* Call authenticate_first() before, for publish and subscribe. */
static void decide(const struct wd_policy *p, const struct request *r, struct wd_verdict *v)
{
    if (r->authn) {
        struct wd_authn_req a = {
            .client = r->c, .password = r->password, .password_len = strlen(r->password)};
        wd_engine_authn_with(p, &a, v, NULL);
        return;
    }
    struct wd_authz_req z = {.client = r->c,
                             .action = r->action,
                             .topic = r->topic,
                             .topic_len = strlen(r->topic),
                             .qos = r->qos,
                             .retain = r->retain};
    struct wd_policy_result res;
    wd_policy_authorize(p, &z, &res);
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
    "  the decision of policy FILE for one request, and the rules that led to it; with\n"
    "  several files, the same request for each (\"== FILE\" before each: an old and a new\n"
    "  policy side by side).\n"
    "  publish/subscribe: with --password the authentication chain runs first and decides\n"
    "  superuser; --superuser states what a store said.\n"
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
        char err[128];
        if (wd_tool_std_flag(argv[i], explain_usage) == 0)
            return 0;
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "warden explain: expected --FIELD VALUE, got '%s'\n", argv[i]);
            return 2;
        }
        have_action = have_action || strcmp(argv[i] + 2, "action") == 0;
        if (!request_set(&r, argv[i] + 2, argv[i + 1], err, sizeof err)) {
            fprintf(stderr, "warden explain: %s\n", err);
            return 2;
        }
        i++;
    }
    if (!have_action) {
        fprintf(stderr, "warden explain: --action publish|subscribe|authn is required\n");
        return 2;
    }
    if (!r.authn && !r.topic[0]) {
        fprintf(stderr, "warden explain: --topic is required for publish and subscribe\n");
        return 2;
    }
    if (request_conflict(&r)) {
        fprintf(stderr, "warden explain: %s\n", request_conflict(&r));
        return 2;
    }
    int ex = 0;
    for (int i = 1; i <= nfiles; i++) {
        if (nfiles > 1)
            printf("%s== %s\n", i > 1 ? "\n" : "", argv[i]);
        if (explain_one(argv[i], r) != 0)
            ex = 1;
    }
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
    bool reaches = authenticate_first(p, &r, &v);
    if (r.authn || !reaches) {
        if (r.authn)
            decide(p, &r, &v);
        printf("authn username=\"%s\": %s (%s)", r.c.username, wd_decision_str(v.decision),
               v.reason);
        if (!reaches)
            printf(": the client never gets to %s",
                   r.action == WD_ACTION_PUBLISH ? "publish" : "subscribe");
        printf("\n");
        if (v.line) {
            printf("decided by %s:%u\n", file, v.line);
            print_line(x.src, v.line);
        }
        if (!reaches)
            rc = WD_EINVAL;
    } else {
        if (r.has_password)
            printf("authn username=\"%s\": %s (%s, %s:%u): %s\n", r.c.username,
                   wd_decision_str(v.decision), v.reason, file, v.line,
                   r.c.is_superuser ? "a superuser" : "not a superuser");
        struct wd_authz_req z = {.client = r.c,
                                 .action = r.action,
                                 .topic = r.topic,
                                 .topic_len = strlen(r.topic),
                                 .qos = r.qos,
                                 .retain = r.retain};
        struct wd_policy_result res;
        printf("%s \"%s\" username=\"%s\" clientid=\"%s\"\n",
               r.action == WD_ACTION_PUBLISH ? "publish" : "subscribe", r.topic, r.c.username,
               r.c.clientid);
        wd_policy_explain_authorize(p, &z, explain_step, &x, &res);
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
    "  run policies' test cases (docs/policy.md \"Testing a policy\"); prints a FAIL line\n"
    "  for each case that fails, then \"N passed, N failed\" (with several files, that line\n"
    "  for each file, after its name, and then the totals). Exit status: 0 all passed,\n"
    "  1 a case failed (or a file has none), 2 a tests file is malformed or unreadable, or\n"
    "  bad usage.\n";

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
    wd_lex(src, len, &d, &strings, &toks);

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
        char err[256] = "";
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
        while (k < end && !bad) {
            const struct wd_token *f = &toks.v[k];
            if (f->kind != WD_TOK_WORD || k + 1 >= end) {
                wd_diag_add(&d, WD_DIAG_ERROR, line, f->col, "expected FIELD VALUE");
                bad = true;
                break;
            }
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
                if (v->kind == WD_TOK_NUMBER && nb < 16) {
                    snprintf(numbuf[nb], sizeof numbuf[nb], "%ld", v->num);
                    val = numbuf[nb++];
                } else if (v->kind == WD_TOK_WORD &&
                           (strcmp(v->text, "true") == 0 || strcmp(v->text, "false") == 0)) {
                    val = v->text;
                } else if (v->kind != WD_TOK_STRING) {
                    wd_diag_add(&d, WD_DIAG_ERROR, line, v->col, "expected a value");
                    bad = true;
                    break;
                }
                if (!request_set(&r, f->text, val, err, sizeof err)) {
                    wd_diag_add(&d, WD_DIAG_ERROR, line, f->col, "%s", err);
                    bad = true;
                }
            }
            k += 2;
        }
        if (!bad && request_conflict(&r)) {
            wd_diag_add(&d, WD_DIAG_ERROR, line, t->col, "%s", request_conflict(&r));
            bad = true;
        }
        if (bad)
            continue;
        struct wd_verdict v;
        memset(&v, 0, sizeof v);
        if (!authenticate_first(p, &r, &v)) {
            failed++;
            printf("FAIL %s:%u: the password is refused by %s:%u (%s): the client never gets "
                   "to %s\n",
                   path, line, policy_path, v.line, v.reason,
                   r.action == WD_ACTION_PUBLISH ? "publish" : "subscribe");
            if (v.line && policy_src)
                print_line(policy_src, v.line);
            continue;
        }
        decide(p, &r, &v);
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
