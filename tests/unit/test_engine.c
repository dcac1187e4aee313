/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/engine: the authentication chain, policy loading, reload. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/log.h"
#include "engine/engine.h"

/* sha256("pepper" + "hunter2"), computed with sha256sum */
#define HUNTER2 "\"sha256:pepper:ca458f67a1e64e60f40414c062c57abbfc1d41b5d0c30cd07d12704540067f21\""

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/wd_test_engine_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* rewrite through a rename, as editors and deploy tools do */
static void replace_file(const char *path, const char *text)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static struct wd_policy *load(const char *text)
{
    char *path = write_tmp(text);
    struct wd_policy *p = NULL;
    char *report = NULL;
    int rc = wd_engine_load_policy(path, &p, &report);
    if (rc != WD_OK && report)
        fprintf(stderr, "%s", report);
    free(report);
    unlink(path);
    free(path);
    assert_int_equal(rc, WD_OK);
    return p;
}

static enum wd_decision authn(const struct wd_policy *p, const char *user, const char *pw,
                              const char *peer, unsigned *line)
{
    struct wd_authn_req r = {0};
    r.client.node = r.client.clientid = r.client.protocol = "";
    r.client.mountpoint = r.client.cn = r.client.dn = "";
    r.client.username = user;
    r.client.peerhost = peer;
    r.client.sockport = 1883;
    r.password = pw;
    r.password_len = strlen(pw);
    struct wd_verdict v;
    wd_engine_authn_with(p, &r, NULL, &v, NULL);
    if (line)
        *line = v.line;
    return v.decision;
}

/* The tools' stand-in for a store (`warden test ... authn jwt`): the named step allows where
 * the chain reaches it and its `when` holds, with the stated superuser; the other store step
 * never answers; earlier steps still decide first. */
static void a_stated_store_step_answers_only_where_the_chain_reaches_it(void **state)
{
    struct wd_policy *p = load("user \"alice\" " HUNTER2 "\n"
                               "authn users\n"
                               "authn deny when peer in [\"10.0.0.0/8\"]\n"
                               "authn jwt when username ~ \"dev-.*\"\n"
                               "authn redis\n"
                               "authn default nomatch\n");
    struct wd_authn_req r = {0};
    r.client.node = r.client.clientid = r.client.protocol = "";
    r.client.mountpoint = r.client.cn = r.client.dn = "";
    r.client.username = "dev-1";
    r.client.peerhost = "1.2.3.4";
    r.password = "tok";
    r.password_len = 3;
    struct wd_verdict v;
    bool su = false;
    struct wd_authn_standin jwt = {WD_STEP_JWT, true}, redis = {WD_STEP_REDIS, false};
    wd_engine_authn_with(p, &r, &jwt, &v, &su);
    assert_int_equal(v.decision, WD_DECISION_ALLOW);
    assert_int_equal(v.line, 4);
    assert_string_equal(v.step, "jwt");
    assert_true(su);
    /* the jwt step's when is false for "u": redis is the stated one only when named */
    r.client.username = "u";
    wd_engine_authn_with(p, &r, &jwt, &v, &su);
    assert_int_equal(v.decision, WD_DECISION_NOMATCH);
    assert_int_equal(v.line, 6);
    assert_false(su);
    wd_engine_authn_with(p, &r, &redis, &v, &su);
    assert_int_equal(v.decision, WD_DECISION_ALLOW);
    assert_int_equal(v.line, 5);
    assert_string_equal(v.step, "redis");
    assert_false(su);
    /* an earlier step decides first: a denied peer, a static user's wrong password */
    r.client.peerhost = "10.1.1.1";
    wd_engine_authn_with(p, &r, &redis, &v, &su);
    assert_int_equal(v.decision, WD_DECISION_DENY);
    assert_int_equal(v.line, 3);
    r.client.peerhost = "1.2.3.4";
    r.client.username = "alice";
    wd_engine_authn_with(p, &r, &redis, &v, &su);
    assert_int_equal(v.decision, WD_DECISION_DENY);
    assert_int_equal(v.line, 2);
    /* no stand-in: the store steps never answer */
    r.client.username = "dev-1";
    wd_engine_authn_with(p, &r, NULL, &v, &su);
    assert_int_equal(v.decision, WD_DECISION_NOMATCH);
    wd_policy_release(p);
}

static void users_step_allows_right_and_denies_wrong_passwords(void **state)
{
    struct wd_policy *p = load("user \"alice\" " HUNTER2 "\nauthn users\nauthn default allow\n");
    unsigned line;
    assert_int_equal(authn(p, "alice", "hunter2", "1.2.3.4", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 2);
    assert_int_equal(authn(p, "alice", "hunter3", "1.2.3.4", NULL), WD_DECISION_DENY);
    /* unknown user: the chain goes on to the default */
    assert_int_equal(authn(p, "bob", "x", "1.2.3.4", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 3);
    wd_policy_release(p);
}

static void chain_runs_in_order_with_conditions(void **state)
{
    struct wd_policy *p = load("user \"alice\" " HUNTER2 "\n"
                               "authn deny when peer in [\"192.0.2.0/24\"]\n"
                               "authn anonymous allow when peer in [\"127.0.0.1\"]\n"
                               "authn anonymous deny\n"
                               "authn users\n");
    unsigned line;
    assert_int_equal(authn(p, "alice", "hunter2", "192.0.2.7", &line), WD_DECISION_DENY);
    assert_int_equal(line, 2);
    assert_int_equal(authn(p, "", "", "127.0.0.1", &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 3);
    assert_int_equal(authn(p, "", "", "10.0.0.1", &line), WD_DECISION_DENY);
    assert_int_equal(line, 4);
    assert_int_equal(authn(p, "alice", "hunter2", "10.0.0.1", NULL), WD_DECISION_ALLOW);
    /* no default line: deny, line 0 */
    assert_int_equal(authn(p, "mallory", "x", "10.0.0.1", &line), WD_DECISION_DENY);
    assert_int_equal(line, 0);
    wd_policy_release(p);
}

static void anonymous_is_never_the_user_named_undefined(void **state)
{
    struct wd_policy *p = load("user \"undefined\" \"plain:\"\nauthn users\nauthn default deny\n");
    assert_int_equal(authn(p, "", "", "1.1.1.1", NULL), WD_DECISION_DENY);
    assert_int_equal(authn(p, "undefined", "", "1.1.1.1", NULL), WD_DECISION_ALLOW);
    wd_policy_release(p);
}

static void malformed_secrets_are_errors_with_the_user_line(void **state)
{
    char *path = write_tmp("user \"a\" \"plain:ok\"\nuser \"b\" \"sha256:nohash\"\n"
                           "user \"c\" \"md4:x\"\nauthn users\n");
    struct wd_policy *p = NULL;
    char *report = NULL;
    assert_int_equal(wd_engine_load_policy(path, &p, &report), WD_ESYNTAX);
    assert_null(p);
    assert_non_null(strstr(report, ":2:10: error: user \"b\":"));
    assert_non_null(strstr(report, ":3:10: error: user \"c\": unknown password scheme"));
    assert_non_null(strstr(report, ":1:10: warning: user \"a\": a plain: password"));
    free(report);
    unlink(path);
    free(path);
}

static void diagnostics_never_echo_a_secret(void **state)
{
    char *path = write_tmp("user \"bob\" \"plain:s3cr3t-Pa55\"\n"
                           "user \"eve\" \"md5:t0ps3cr3t\"\n"
                           "user \"x\" \"sha256:a:h1dden\\q\"\n"
                           "authn users\n");
    struct wd_policy *p = NULL;
    char *report = NULL;
    assert_int_not_equal(wd_engine_load_policy(path, &p, &report), WD_OK);
    assert_non_null(report);
    assert_null(strstr(report, "s3cr3t"));
    assert_null(strstr(report, "t0ps3cr3t"));
    assert_null(strstr(report, "h1dden"));
    assert_non_null(strstr(report, "user \"bob\" *******************\n"));
    free(report);
    unlink(path);
    free(path);
}

static void embedded_policy_compiles(void **state)
{
    struct wd_policy *p = NULL;
    char *report = NULL;
    assert_int_equal(wd_engine_load_policy(NULL, &p, &report), WD_OK);
    assert_null(report);
    assert_int_equal(authn(p, "demo", "demo", "127.0.0.1", NULL), WD_DECISION_ALLOW);
    assert_int_equal(authn(p, "demo", "nope", "127.0.0.1", NULL), WD_DECISION_DENY);
    wd_policy_release(p);
}

static enum wd_decision authz(struct wd_engine_local *l, const char *topic, unsigned long *gen)
{
    struct wd_authz_req r = {0};
    r.client.node = r.client.clientid = r.client.protocol = r.client.peerhost = "";
    r.client.mountpoint = r.client.cn = r.client.dn = "";
    r.client.username = "u";
    r.action = WD_ACTION_PUBLISH;
    r.topic = topic;
    r.topic_len = strlen(topic);
    r.qos = r.retain = -1;
    struct wd_verdict v;
    wd_engine_authorize(l, &r, &v);
    if (gen)
        *gen = v.generation;
    return v.decision;
}

static void reload_swaps_and_a_broken_file_keeps_the_old_policy(void **state)
{
    char *path = write_tmp("allow publish \"a\"\n");
    struct wd_config cfg;
    wd_config_defaults(&cfg);
    cfg.policy = strdup(path);
    char *report = NULL;
    struct wd_engine *e = wd_engine_new(&cfg, &report);
    assert_non_null(e);
    free(report);
    struct wd_engine_local *l = wd_engine_local_new(e);
    assert_int_equal(authz(l, "a", NULL), WD_DECISION_ALLOW);
    assert_int_equal(authz(l, "b", NULL), WD_DECISION_DENY);

    replace_file(path, "allow publish \"b\"\n");
    assert_int_equal(wd_engine_reload(e, &report), WD_OK);
    free(report);
    assert_int_equal(authz(l, "a", NULL), WD_DECISION_DENY);
    assert_int_equal(authz(l, "b", NULL), WD_DECISION_ALLOW);

    unsigned long g1 = wd_engine_generation(e);
    replace_file(path, "allow publish \"c\" when bogus\n");
    assert_int_equal(wd_engine_reload(e, &report), WD_ESYNTAX);
    assert_non_null(strstr(report, "unknown field 'bogus'"));
    free(report);
    assert_int_equal(wd_engine_generation(e), g1);
    assert_int_equal(authz(l, "b", NULL), WD_DECISION_ALLOW);

    wd_engine_local_free(l);
    wd_engine_free(e);
    wd_config_cleanup(&cfg);
    unlink(path);
    free(path);
}

/* A store directive's value that the engine refuses is reported at the file:line that set it,
 * as the configuration's own errors are (before: "redis_authn_key: unknown placeholder ..."
 * alone, the operator had to find the line). No Redis is reached: a refused template stops
 * the set-up before the start-up probe. */
static void store_errors_name_the_line_that_set_the_directive(void **state)
{
    char *path = write_tmp("allow publish \"a\"\n");
    struct wd_config cfg;
    wd_config_defaults(&cfg);
    char conf[512];
    snprintf(conf, sizeof conf,
             "policy %s\nredis_host 127.0.0.1\nredis_port 1\n"
             "redis_acl_key mqtt_acl:${zone}\njwt_public_key /nonexistent/jwt.pub\n",
             path);
    char *errors = NULL;
    assert_int_equal(wd_config_parse(&cfg, "w.conf", conf, strlen(conf), &errors), WD_OK);
    char *report = NULL;
    assert_null(wd_engine_new(&cfg, &report));
    assert_non_null(report);
    assert_non_null(strstr(report, "w.conf:4: redis_acl_key: unknown placeholder ${zone}"));
    assert_non_null(strstr(report, "w.conf:5: jwt_public_key /nonexistent/jwt.pub"));
    free(report);
    wd_config_cleanup(&cfg);
    unlink(path);
    free(path);
}

struct load_ctx {
    struct wd_engine *e;
    atomic_int stop;
    atomic_long bad, done; /* both evaluator threads count (TSan: plain ++ races) */
};

static void *evaluate_forever(void *arg)
{
    struct load_ctx *x = arg;
    struct wd_engine_local *l = wd_engine_local_new(x->e);
    while (!atomic_load(&x->stop)) {
        /* every version allows "x": any other answer means a torn or freed policy */
        if (authz(l, "x", NULL) != WD_DECISION_ALLOW)
            atomic_fetch_add(&x->bad, 1);
        atomic_fetch_add(&x->done, 1);
    }
    wd_engine_local_free(l);
    return NULL;
}

static void reload_under_concurrent_evaluation_is_safe(void **state)
{
    char *path = write_tmp("allow publish \"x\"\n");
    struct wd_config cfg;
    wd_config_defaults(&cfg);
    cfg.policy = strdup(path);
    char *report = NULL;
    struct load_ctx x = {0};
    x.e = wd_engine_new(&cfg, &report);
    free(report);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, evaluate_forever, &x);
    for (int i = 0; i < 200; i++) {
        replace_file(path, i % 2 ? "allow publish [\"a\", \"x\"]\n"
                                 : "deny publish \"a\"\nallow publish [\"b\", \"x\"]\n");
        assert_int_equal(wd_engine_reload(x.e, &report), WD_OK);
        free(report);
    }
    atomic_store(&x.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&x.bad), 0);
    assert_true(atomic_load(&x.done) > 0);
    wd_engine_free(x.e);
    wd_config_cleanup(&cfg);
    unlink(path);
    free(path);
}

int main(void)
{
    wd_log_set_level(WD_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(users_step_allows_right_and_denies_wrong_passwords),
        cmocka_unit_test(a_stated_store_step_answers_only_where_the_chain_reaches_it),
        cmocka_unit_test(chain_runs_in_order_with_conditions),
        cmocka_unit_test(anonymous_is_never_the_user_named_undefined),
        cmocka_unit_test(malformed_secrets_are_errors_with_the_user_line),
        cmocka_unit_test(diagnostics_never_echo_a_secret),
        cmocka_unit_test(embedded_policy_compiles),
        cmocka_unit_test(reload_swaps_and_a_broken_file_keeps_the_old_policy),
        cmocka_unit_test(reload_under_concurrent_evaluation_is_safe),
        cmocka_unit_test(store_errors_name_the_line_that_set_the_directive),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
