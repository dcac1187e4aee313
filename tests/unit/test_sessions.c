/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/engine/sessions.c, the session table: a session is given only to the
 * connection that made it, ends with its token (exp + leeway) or session_ttl under a fake
 * clock (no test waits), a handle outlives the entry it came from, the superuser flag needs
 * a credential step, a disconnect drops only its own connection's session, and a session
 * too large for the budget removes the older one.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/wd.h"
#include "engine/jwtident.h"
#include "engine/sessions.h"

struct fake_clock {
    int64_t mono_ms;
    int64_t unix_s;
};

static int64_t fake_mono(void *ctx)
{
    return ((struct fake_clock *)ctx)->mono_ms;
}

static int64_t fake_unix(void *ctx)
{
    return ((struct fake_clock *)ctx)->unix_s;
}

/* Advances both clocks, as real time does. */
static void advance(struct fake_clock *c, int64_t ms)
{
    c->mono_ms += ms;
    c->unix_s = 1700000000 + c->mono_ms / 1000;
}

static struct wd_sessions *table(struct fake_clock *clk, int64_t ttl_ms, int64_t leeway_s)
{
    clk->mono_ms = 0;
    clk->unix_s = 1700000000;
    struct wd_clock c = {fake_mono, fake_unix, clk};
    struct wd_sessions_config cfg = {
        .max_entries = 1024,
        .max_bytes = 1 << 20,
        .ttl_ms = ttl_ms,
        .leeway_s = leeway_s,
        .clock = &c,
    };
    struct wd_sessions *t = wd_sessions_new(&cfg);
    assert_non_null(t);
    return t;
}

static struct wd_client cl(const char *user, const char *cid, const char *host, uint32_t port)
{
    struct wd_client c = {.node = "n",
                          .clientid = cid,
                          .username = user,
                          .peerhost = host,
                          .peerport = port,
                          .protocol = "mqtt",
                          .mountpoint = "",
                          .cn = "",
                          .dn = ""};
    return c;
}

/* A verified token without claims or ACL, expiring at exp; extra: its memory estimate. */
static struct wd_jwt_ident *token(int64_t exp, size_t extra)
{
    struct wd_jwt_result res;
    memset(&res, 0, sizeof res);
    res.exp = exp;
    struct wd_jwt_ident *j = NULL;
    assert_int_equal(wd_jwt_ident_new(&res, "test", extra, &j), WD_OK);
    return j;
}

static enum wd_sessions_found look(struct wd_sessions *t, const struct wd_client *c, bool *su)
{
    struct wd_session *s = NULL;
    enum wd_sessions_found f = wd_sessions_lookup(t, c, &s);
    assert_true((f == WD_SESSIONS_HIT) == (s != NULL));
    if (su)
        *su = wd_session_superuser(s);
    wd_session_release(s);
    return f;
}

static void a_session_is_given_only_to_the_connection_that_made_it(void **state)
{
    (void)state;
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk, 0, 0);
    struct wd_client c = cl("ops", "c1", "10.0.0.7", 5000);
    assert_int_equal(wd_sessions_put(t, &c, WD_SESSION_STATIC, true, NULL, NULL, NULL), WD_OK);
    bool su = false;
    assert_int_equal(look(t, &c, &su), WD_SESSIONS_HIT);
    assert_true(su);
    struct wd_client other_user = cl("eve", "c1", "10.0.0.7", 5000);
    struct wd_client other_host = cl("ops", "c1", "10.0.0.8", 5000);
    struct wd_client other_port = cl("ops", "c1", "10.0.0.7", 5001);
    struct wd_client other_id = cl("ops", "c2", "10.0.0.7", 5000);
    struct wd_client port_unknown = cl("ops", "c1", "10.0.0.7", 0);
    assert_int_equal(look(t, &other_user, NULL), WD_SESSIONS_MISS);
    assert_int_equal(look(t, &other_host, NULL), WD_SESSIONS_MISS);
    assert_int_equal(look(t, &other_port, NULL), WD_SESSIONS_MISS);
    assert_int_equal(look(t, &other_id, NULL), WD_SESSIONS_MISS);
    assert_int_equal(look(t, &port_unknown, NULL), WD_SESSIONS_HIT); /* EMQX before 5.4 */
    wd_sessions_free(t);
}

static void a_token_session_ends_at_exp_plus_leeway_without_waiting(void **state)
{
    (void)state;
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk, 0, 2);
    struct wd_client c = cl("u", "c1", "10.0.0.7", 5000);
    int64_t end = 0;
    struct wd_session *s = NULL;
    assert_int_equal(
        wd_sessions_put(t, &c, WD_SESSION_JWT, true, token(clk.unix_s + 60, 0), &s, &end), WD_OK);
    assert_non_null(s);
    assert_true(end == (clk.unix_s + 62) * 1000);
    advance(&clk, 61000);
    assert_int_equal(look(t, &c, NULL), WD_SESSIONS_HIT); /* within the leeway */
    assert_true(wd_session_usable(t, s, &c));
    advance(&clk, 1000);
    assert_int_equal(look(t, &c, NULL), WD_SESSIONS_MISS); /* exp + leeway */
    assert_false(wd_session_usable(t, s, &c));             /* a handle held across it too */
    wd_session_release(s);
    wd_sessions_free(t);
}

static void a_wall_clock_jump_past_exp_ends_a_token_session(void **state)
{
    (void)state;
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk, 0, 0);
    struct wd_client c = cl("u", "c1", "10.0.0.7", 5000);
    assert_int_equal(
        wd_sessions_put(t, &c, WD_SESSION_JWT, false, token(clk.unix_s + 3600, 0), NULL, NULL),
        WD_OK);
    clk.unix_s += 3600; /* the wall clock moved, the monotonic one did not */
    assert_int_equal(look(t, &c, NULL), WD_SESSIONS_MISS);
    wd_sessions_free(t);
}

static void session_ttl_ends_a_session_and_caps_a_token(void **state)
{
    (void)state;
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk, 10000, 0);
    struct wd_client a = cl("u", "a", "10.0.0.7", 5000);
    struct wd_client b = cl("u", "b", "10.0.0.7", 5000);
    int64_t end_a = 0, end_b = 0;
    assert_int_equal(wd_sessions_put(t, &a, WD_SESSION_REDIS, false, NULL, NULL, &end_a), WD_OK);
    assert_int_equal(
        wd_sessions_put(t, &b, WD_SESSION_JWT, false, token(clk.unix_s + 3600, 0), NULL, &end_b),
        WD_OK);
    assert_true(end_a == clk.unix_s * 1000 + 10000);
    assert_true(end_b == clk.unix_s * 1000 + 10000);
    advance(&clk, 9999);
    assert_int_equal(look(t, &a, NULL), WD_SESSIONS_HIT);
    assert_int_equal(look(t, &b, NULL), WD_SESSIONS_HIT);
    advance(&clk, 1);
    assert_int_equal(look(t, &a, NULL), WD_SESSIONS_MISS);
    assert_int_equal(look(t, &b, NULL), WD_SESSIONS_MISS);
    wd_sessions_free(t);
}

static void without_ttl_or_token_a_session_has_no_end(void **state)
{
    (void)state;
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk, 0, 0);
    struct wd_client c = cl("u", "c1", "10.0.0.7", 5000);
    int64_t end = -1;
    assert_int_equal(wd_sessions_put(t, &c, WD_SESSION_STATIC, false, NULL, NULL, &end), WD_OK);
    assert_true(end == 0);
    advance(&clk, (int64_t)30 * 86400 * 1000);
    assert_int_equal(look(t, &c, NULL), WD_SESSIONS_HIT);
    wd_sessions_free(t);
}

static void a_handle_outlives_replacement_drop_and_flush(void **state)
{
    (void)state;
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk, 0, 0);
    struct wd_client c = cl("ops", "c1", "10.0.0.7", 5000);
    assert_int_equal(wd_sessions_put(t, &c, WD_SESSION_STATIC, true, NULL, NULL, NULL), WD_OK);
    struct wd_session *s = NULL;
    assert_int_equal(wd_sessions_lookup(t, &c, &s), WD_SESSIONS_HIT);
    /* another login replaces it, a disconnect and a flush follow: the handle still reads
     * the session it was given */
    struct wd_client c2 = cl("ops", "c1", "10.0.0.7", 5001);
    assert_int_equal(wd_sessions_put(t, &c2, WD_SESSION_OTHER, true, NULL, NULL, NULL), WD_OK);
    assert_true(wd_sessions_drop(t, &c2));
    wd_sessions_flush_all(t);
    assert_true(wd_session_superuser(s));
    assert_true(wd_session_usable(t, s, &c));
    wd_session_release(s);
    wd_sessions_free(t);
}

static void only_a_credential_step_makes_a_superuser(void **state)
{
    (void)state;
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk, 0, 0);
    struct wd_client c = cl("ops", "c1", "10.0.0.7", 5000);
    bool su = true;
    assert_int_equal(wd_sessions_put(t, &c, WD_SESSION_OTHER, true, NULL, NULL, NULL), WD_OK);
    assert_int_equal(look(t, &c, &su), WD_SESSIONS_HIT);
    assert_false(su);
    assert_int_equal(wd_sessions_put(t, &c, WD_SESSION_REDIS, true, NULL, NULL, NULL), WD_OK);
    assert_int_equal(look(t, &c, &su), WD_SESSIONS_HIT);
    assert_true(su);
    wd_sessions_free(t);
}

static void a_disconnect_drops_only_its_own_connections_session(void **state)
{
    (void)state;
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk, 0, 0);
    struct wd_client c = cl("ops", "c1", "10.0.0.7", 5000);
    struct wd_client old = cl("ops", "c1", "10.0.0.7", 4999);
    assert_int_equal(wd_sessions_put(t, &c, WD_SESSION_STATIC, true, NULL, NULL, NULL), WD_OK);
    assert_false(wd_sessions_drop(t, &old)); /* a late disconnect of an earlier connection */
    assert_int_equal(look(t, &c, NULL), WD_SESSIONS_HIT);
    assert_true(wd_sessions_drop(t, &c));
    assert_int_equal(look(t, &c, NULL), WD_SESSIONS_MISS);
    wd_sessions_free(t);
}

static void a_session_too_large_removes_the_older_one(void **state)
{
    (void)state;
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk, 0, 0);
    struct wd_client c = cl("ops", "c1", "10.0.0.7", 5000);
    assert_int_equal(wd_sessions_put(t, &c, WD_SESSION_STATIC, true, NULL, NULL, NULL), WD_OK);
    struct wd_session *s = (struct wd_session *)1;
    assert_int_equal(wd_sessions_put(t, &c, WD_SESSION_JWT, false, token(0, 4 << 20), &s, NULL),
                     WD_ETOOBIG);
    assert_null(s);
    assert_int_equal(look(t, &c, NULL), WD_SESSIONS_MISS);
    wd_sessions_free(t);
}

struct racer {
    struct wd_sessions *t;
    int id;
    int bad;
};

static void *race_logins(void *arg)
{
    struct racer *r = arg;
    char host[32];
    snprintf(host, sizeof host, "10.0.0.%d", r->id);
    struct wd_client c = cl("ops", "same-id", host, 5000);
    for (int i = 0; i < 2000; i++) {
        struct wd_session *s = NULL;
        int64_t end;
        if (wd_sessions_put(r->t, &c, WD_SESSION_STATIC, true, NULL, &s, &end) != WD_OK) {
            r->bad++;
            continue;
        }
        /* the handle is this login's, whatever the other threads put since */
        if (!wd_session_superuser(s) || !wd_session_usable(r->t, s, &c))
            r->bad++;
        wd_session_release(s);
    }
    return NULL;
}

/* Logins of one client id racing on several threads: each caller's handle stays valid and
 * its own while the others replace the entry (ASan checks the memory). */
static void a_handle_from_put_survives_concurrent_replacement(void **state)
{
    (void)state;
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk, 0, 0);
    enum { N = 4 };
    pthread_t th[N];
    struct racer r[N];
    for (int i = 0; i < N; i++) {
        r[i] = (struct racer){t, i + 1, 0};
        pthread_create(&th[i], NULL, race_logins, &r[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].bad, 0);
    }
    wd_sessions_free(t);
}

static void invalid_limits_are_refused(void **state)
{
    (void)state;
    struct wd_sessions_config cfg = {.max_entries = 8, .max_bytes = 1 << 20};
    assert_null(wd_sessions_new(&cfg));
    cfg = (struct wd_sessions_config){.max_entries = 1024, .max_bytes = 1024};
    assert_null(wd_sessions_new(&cfg));
}

int main(void)
{
    wd_log_set_level(WD_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_session_is_given_only_to_the_connection_that_made_it),
        cmocka_unit_test(a_token_session_ends_at_exp_plus_leeway_without_waiting),
        cmocka_unit_test(a_wall_clock_jump_past_exp_ends_a_token_session),
        cmocka_unit_test(session_ttl_ends_a_session_and_caps_a_token),
        cmocka_unit_test(without_ttl_or_token_a_session_has_no_end),
        cmocka_unit_test(a_handle_outlives_replacement_drop_and_flush),
        cmocka_unit_test(only_a_credential_step_makes_a_superuser),
        cmocka_unit_test(a_disconnect_drops_only_its_own_connections_session),
        cmocka_unit_test(a_session_too_large_removes_the_older_one),
        cmocka_unit_test(a_handle_from_put_survives_concurrent_replacement),
        cmocka_unit_test(invalid_limits_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
