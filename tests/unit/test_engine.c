/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/engine/engine.c: the decision seam over configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "engine/engine.h"

static struct wd_engine *engine_from(const char *text, struct wd_config *c)
{
    char *errors = NULL;
    wd_config_defaults(c);
    assert_int_equal(wd_config_parse(c, "e.conf", text, strlen(text), &errors), WD_OK);
    struct wd_engine *e = wd_engine_new(c, &errors);
    assert_non_null(e);
    return e;
}

static struct wd_authn_req authn(const char *user, const char *pw)
{
    struct wd_authn_req r = {0};
    r.client.node = r.client.clientid = r.client.peerhost = r.client.protocol = "";
    r.client.mountpoint = r.client.cn = r.client.dn = "";
    r.client.username = user;
    r.password = pw;
    r.password_len = strlen(pw);
    return r;
}

static void static_user_with_right_password_is_allowed(void **state)
{
    struct wd_config c;
    struct wd_engine *e = engine_from("user alice plain:wonderland\n", &c);
    struct wd_authn_req r = authn("alice", "wonderland");
    struct wd_verdict v;
    assert_int_equal(wd_engine_authenticate(e, &r, &v), WD_OK);
    assert_int_equal(v.decision, WD_DECISION_ALLOW);
    wd_engine_free(e);
    wd_config_cleanup(&c);
}

static void static_user_with_wrong_password_is_denied_even_when_default_allows(void **state)
{
    struct wd_config c;
    struct wd_engine *e = engine_from("authn_default allow\nuser alice plain:wonderland\n", &c);
    struct wd_authn_req r = authn("alice", "Wonderland");
    struct wd_verdict v;
    assert_int_equal(wd_engine_authenticate(e, &r, &v), WD_OK);
    assert_int_equal(v.decision, WD_DECISION_DENY);
    wd_engine_free(e);
    wd_config_cleanup(&c);
}

static void unknown_and_anonymous_users_get_authn_default(void **state)
{
    struct wd_config c;
    struct wd_engine *e = engine_from("authn_default nomatch\nuser alice plain:x\n", &c);
    struct wd_verdict v;
    struct wd_authn_req r = authn("mallory", "x");
    wd_engine_authenticate(e, &r, &v);
    assert_int_equal(v.decision, WD_DECISION_NOMATCH);
    r = authn("", "x"); /* no username: never looked up, never "undefined" */
    wd_engine_authenticate(e, &r, &v);
    assert_int_equal(v.decision, WD_DECISION_NOMATCH);
    wd_engine_free(e);
    wd_config_cleanup(&c);
}

static void default_config_denies_unknown_users(void **state)
{
    struct wd_config c;
    struct wd_engine *e = engine_from("", &c);
    struct wd_verdict v;
    struct wd_authn_req r = authn("someone", "pw");
    wd_engine_authenticate(e, &r, &v);
    assert_int_equal(v.decision, WD_DECISION_DENY);
    wd_engine_free(e);
    wd_config_cleanup(&c);
}

static void authorize_answers_authz_default(void **state)
{
    struct wd_config c;
    struct wd_engine *e = engine_from("authz_default allow\n", &c);
    struct wd_authz_req r = {0};
    r.client = authn("u", "").client;
    r.action = WD_ACTION_SUBSCRIBE;
    r.topic = "a/#";
    r.topic_len = 3;
    struct wd_verdict v;
    assert_int_equal(wd_engine_authorize(e, &r, &v), WD_OK);
    assert_int_equal(v.decision, WD_DECISION_ALLOW);
    assert_non_null(v.reason);
    wd_engine_free(e);
    wd_config_cleanup(&c);
}

static void malformed_user_secret_fails_engine_build_with_origin(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    const char *text = "user a plain:ok\nuser b sha256:nohash\nuser c md5:x\n";
    wd_config_defaults(&c);
    assert_int_equal(wd_config_parse(&c, "e.conf", text, strlen(text), &errors), WD_OK);
    assert_null(wd_engine_new(&c, &errors));
    assert_non_null(strstr(errors, "e.conf:2: user 'b':"));
    assert_non_null(strstr(errors, "e.conf:3: user 'c': unknown password scheme"));
    free(errors);
    wd_config_cleanup(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(static_user_with_right_password_is_allowed),
        cmocka_unit_test(static_user_with_wrong_password_is_denied_even_when_default_allows),
        cmocka_unit_test(unknown_and_anonymous_users_get_authn_default),
        cmocka_unit_test(default_config_denies_unknown_users),
        cmocka_unit_test(authorize_answers_authz_default),
        cmocka_unit_test(malformed_user_secret_fails_engine_build_with_origin),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
