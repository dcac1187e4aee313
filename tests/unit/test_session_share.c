/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_session_share.c: the Redis side of `session_store redis` (engine/session_share.h):
 * the configuration check, the commands built (key layout, TTL never past the token nor
 * session_redis_ttl, compare-and-delete by EVAL), and what a reply means. The commands are
 * run on a real redis-server (tests/unit/redis_fixture.h), two session tables standing for
 * two replicas, with fake clocks (no test waits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/wd.h"
#include "engine/session_share.h"
#include "engine/sessions.h"
#include "store/redis.h"

#include "redis_fixture.h"

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

static struct wd_sessions *table(struct fake_clock *clk)
{
    clk->mono_ms = 0;
    clk->unix_s = 1700000000;
    struct wd_clock c = {fake_mono, fake_unix, clk};
    struct wd_sessions_config cfg = {
        .max_entries = 1024,
        .max_bytes = 1 << 20,
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

/* A share handle from the defaults with these settings; NULL with the problems in *errs. */
static struct wd_session_share *share_of(enum wd_config_session_store store, bool redis_on,
                                         const char *prefix, const char *authn_key,
                                         int64_t redis_ttl_ms, char **errs, int *n)
{
    struct wd_config cfg;
    wd_config_defaults(&cfg);
    cfg.session_store = store;
    if (prefix) {
        free(cfg.session_redis_prefix);
        cfg.session_redis_prefix = wd_strdup(prefix);
    }
    if (authn_key) {
        free(cfg.redis_authn_key);
        cfg.redis_authn_key = wd_strdup(authn_key);
    }
    if (redis_ttl_ms)
        cfg.session_redis_ttl_ms = (int)redis_ttl_ms;
    struct wd_buf e = {0};
    struct wd_session_share *s = NULL;
    *n = 0;
    wd_session_share_new(&cfg, redis_on, &s, &e, n);
    *errs = e.s ? e.s : wd_strdup("");
    wd_config_cleanup(&cfg);
    return s;
}

static void arg_is(const struct wd_share_cmd *c, int i, const char *want, size_t len)
{
    assert_true(i < c->argc);
    assert_int_equal(c->lens[i], len);
    assert_memory_equal(c->argv[i], want, len);
}

/* ---- configuration ---- */

static void sessions_are_shared_by_default_only_when_redis_is_configured(void **state)
{
    (void)state;
    char *errs;
    int n;
    struct wd_session_share *s =
        share_of(WD_CONFIG_SESSION_STORE_AUTO, false, NULL, NULL, 0, &errs, &n);
    assert_null(s);
    assert_int_equal(n, 0);
    free(errs);
    s = share_of(WD_CONFIG_SESSION_STORE_AUTO, true, NULL, NULL, 0, &errs, &n);
    assert_non_null(s);
    assert_int_equal(n, 0);
    wd_session_share_free(s);
    free(errs);
    s = share_of(WD_CONFIG_SESSION_STORE_LOCAL, true, NULL, NULL, 0, &errs, &n);
    assert_null(s);
    assert_int_equal(n, 0);
    free(errs);
}

static void session_store_redis_without_redis_is_a_configuration_error(void **state)
{
    (void)state;
    char *errs;
    int n;
    assert_null(share_of(WD_CONFIG_SESSION_STORE_REDIS, false, NULL, NULL, 0, &errs, &n));
    assert_int_equal(n, 1);
    assert_non_null(strstr(errs, "session_store redis: set redis_host or redis_socket"));
    free(errs);
}

static void a_prefix_that_could_name_a_user_record_is_refused(void **state)
{
    (void)state;
    char *errs;
    int n;
    /* "mqtt_" + clientid "user:alice" would be mqtt_user:alice, alice's password hash */
    assert_null(share_of(WD_CONFIG_SESSION_STORE_REDIS, true, "mqtt_", NULL, 0, &errs, &n));
    assert_int_equal(n, 2); /* and mqtt_acl:${username}: both in one pass */
    assert_non_null(strstr(errs, "overlaps redis_authn_key"));
    assert_non_null(strstr(errs, "overlaps redis_acl_key"));
    free(errs);
    /* and a prefix the user key starts with, the other way round */
    assert_null(share_of(WD_CONFIG_SESSION_STORE_REDIS, true, "dev:sess:", "dev:${username}", 0,
                         &errs, &n));
    assert_int_equal(n, 1);
    free(errs);
    assert_null(share_of(WD_CONFIG_SESSION_STORE_REDIS, true, "", NULL, 0, &errs, &n));
    assert_non_null(strstr(errs, "session_redis_prefix: must not be empty"));
    free(errs);
}

/* ---- commands ---- */

static void a_write_never_outlives_the_token_nor_session_redis_ttl(void **state)
{
    (void)state;
    char *errs;
    int n;
    struct wd_session_share *sh =
        share_of(WD_CONFIG_SESSION_STORE_REDIS, true, "ws:", NULL, 600000, &errs, &n);
    free(errs);
    assert_non_null(sh);
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk);
    struct wd_client c = cl("u1", "cid 1\r\n", "10.0.0.1", 4000);
    struct wd_session *s = NULL;
    int64_t end_ms = 0;
    assert_int_equal(wd_sessions_put(t, &c, WD_SESSION_REDIS, false, NULL, &s, &end_ms), WD_OK);
    struct wd_share_cmd cmd;
    /* no token: session_redis_ttl */
    wd_session_share_put(sh, t, c.clientid, s, 0, &cmd);
    assert_int_equal(cmd.argc, 5);
    arg_is(&cmd, 0, "SET", 3);
    arg_is(&cmd, 1, "ws:cid 1\r\n", 10); /* the clientid's bytes, one argument */
    arg_is(&cmd, 3, "PX", 2);
    arg_is(&cmd, 4, "600000", 6);
    wd_share_cmd_cleanup(&cmd);
    /* a token ending in 90 s: 90 s */
    int64_t now = wd_sessions_now_ms(t);
    wd_session_share_put(sh, t, c.clientid, s, now + 90000, &cmd);
    arg_is(&cmd, 4, "90000", 5);
    wd_share_cmd_cleanup(&cmd);
    /* a session that has ended: deleted, never written */
    wd_session_share_put(sh, t, c.clientid, s, now, &cmd);
    assert_int_equal(cmd.argc, 2);
    arg_is(&cmd, 0, "DEL", 3);
    arg_is(&cmd, 1, "ws:cid 1\r\n", 10);
    wd_share_cmd_cleanup(&cmd);
    /* not recorded locally: the older one in Redis goes */
    wd_session_share_put(sh, t, c.clientid, NULL, 0, &cmd);
    assert_int_equal(cmd.argc, 2);
    arg_is(&cmd, 0, "DEL", 3);
    wd_share_cmd_cleanup(&cmd);
    wd_share_cmd_cleanup(&cmd); /* twice is harmless */
    wd_session_release(s);
    wd_sessions_free(t);
    wd_session_share_free(sh);
}

/* ---- on a real Redis: replica A writes, replica B reads, disconnects delete ---- */

static struct wd_redis *client_of(const struct srv *srv)
{
    struct wd_redis_opts o = {.host = "127.0.0.1", .port = srv->port};
    struct wd_redis *r = NULL;
    assert_int_equal(wd_redis_new(&o, &r), WD_OK);
    return r;
}

static int run(struct wd_redis *r, struct wd_share_cmd *cmd, struct wd_redis_raw *raw)
{
    memset(raw, 0, sizeof *raw);
    int rc = wd_redis_command(r, cmd->argc, cmd->argv, cmd->lens, cmd->max_len, raw);
    wd_share_cmd_cleanup(cmd);
    return rc;
}

static long long exists(struct wd_redis *r, const char *key)
{
    const char *argv[2] = {"EXISTS", key};
    size_t lens[2] = {6, strlen(key)};
    struct wd_redis_raw raw;
    assert_int_equal(wd_redis_command(r, 2, argv, lens, 0, &raw), WD_OK);
    long long v = raw.integer;
    wd_redis_raw_cleanup(&raw);
    return v;
}

static enum wd_share_found read_back(const struct wd_session_share *sh, struct wd_redis *r,
                                     struct wd_sessions *t, const struct wd_client *c,
                                     struct wd_session **s)
{
    struct wd_share_cmd cmd;
    struct wd_redis_raw raw;
    wd_session_share_get(sh, c->clientid, &cmd);
    int rc = run(r, &cmd, &raw);
    char why[160];
    enum wd_share_found f = wd_session_share_found(t, c, rc, &raw, "test", s, why, sizeof why);
    wd_redis_raw_cleanup(&raw);
    return f;
}

static void
a_session_written_by_one_replica_is_found_by_another_and_deleted_by_its_owner(void **state)
{
    struct srv *srv = *state;
    char *errs;
    int n;
    struct wd_session_share *sh =
        share_of(WD_CONFIG_SESSION_STORE_REDIS, true, "t1:", NULL, 0, &errs, &n);
    free(errs);
    struct wd_redis *r = client_of(srv);
    struct fake_clock ca, cb;
    struct wd_sessions *a = table(&ca), *b = table(&cb);
    struct wd_client c = cl("alice", "dev-1", "10.0.0.9", 7000);
    struct wd_session *s = NULL;
    int64_t end_ms = 0;
    assert_int_equal(wd_sessions_put(a, &c, WD_SESSION_REDIS, true, NULL, &s, &end_ms), WD_OK);
    struct wd_share_cmd cmd;
    struct wd_redis_raw raw;
    wd_session_share_put(sh, a, c.clientid, s, end_ms, &cmd);
    assert_int_equal(run(r, &cmd, &raw), WD_OK);
    wd_redis_raw_cleanup(&raw);
    wd_session_release(s);

    /* replica B: not local, found in Redis, with the superuser flag of the login */
    struct wd_session *got = NULL;
    assert_int_equal(read_back(sh, r, b, &c, &got), WD_SHARE_FOUND);
    assert_true(wd_session_superuser(got));
    wd_session_release(got);
    /* another connection with the same clientid (another port) gets nothing */
    struct wd_client thief = cl("alice", "dev-1", "10.0.0.9", 7001);
    struct fake_clock cc;
    struct wd_sessions *t3 = table(&cc);
    assert_int_equal(read_back(sh, r, t3, &thief, &got), WD_SHARE_NONE);
    assert_null(got);

    /* a disconnect from the other connection leaves it; from the owner deletes it */
    wd_session_share_drop(sh, &thief, &cmd);
    assert_int_equal(run(r, &cmd, &raw), WD_OK);
    assert_int_equal(raw.integer, 0);
    wd_redis_raw_cleanup(&raw);
    assert_int_equal(exists(r, "t1:dev-1"), 1);
    wd_session_share_drop(sh, &c, &cmd);
    assert_int_equal(run(r, &cmd, &raw), WD_OK);
    assert_int_equal(raw.integer, 1);
    wd_redis_raw_cleanup(&raw);
    assert_int_equal(exists(r, "t1:dev-1"), 0);

    wd_sessions_free(t3);
    wd_sessions_free(a);
    wd_sessions_free(b);
    wd_redis_free(r);
    wd_session_share_free(sh);
}

static void a_value_that_is_not_a_session_record_is_refused_and_left_in_place(void **state)
{
    struct srv *srv = *state;
    char *errs;
    int n;
    struct wd_session_share *sh =
        share_of(WD_CONFIG_SESSION_STORE_REDIS, true, "t2:", NULL, 0, &errs, &n);
    free(errs);
    struct wd_redis *r = client_of(srv);
    const char *set[3] = {"SET", "t2:dev-2", "{\"user\":\"bob\",\"superuser\":true}"};
    size_t lens[3] = {3, 8, strlen(set[2])};
    struct wd_redis_raw raw;
    assert_int_equal(wd_redis_command(r, 3, set, lens, 0, &raw), WD_OK);
    wd_redis_raw_cleanup(&raw);
    struct fake_clock clk;
    struct wd_sessions *t = table(&clk);
    struct wd_client c = cl("bob", "dev-2", "10.0.0.2", 0);
    struct wd_session *got = NULL;
    assert_int_equal(read_back(sh, r, t, &c, &got), WD_SHARE_REFUSED);
    assert_null(got);
    /* a miss is remembered: the next call does not read Redis again */
    struct wd_session *loc = NULL;
    assert_int_equal(wd_sessions_lookup(t, &c, &loc), WD_SESSIONS_ABSENT);
    /* a delete does not touch it either: not warden's (bob, no host) */
    struct wd_share_cmd cmd;
    wd_session_share_drop(sh, &c, &cmd);
    assert_int_equal(run(r, &cmd, &raw), WD_OK);
    wd_redis_raw_cleanup(&raw);
    assert_int_equal(exists(r, "t2:dev-2"), 1);
    /* nothing there: NONE; Redis failing: FAILED, nothing remembered */
    struct wd_client d = cl("carol", "dev-3", "10.0.0.3", 1);
    assert_int_equal(read_back(sh, r, t, &d, &got), WD_SHARE_NONE);
    struct wd_client e = cl("dave", "dev-4", "10.0.0.4", 1);
    struct wd_redis_raw none = {0};
    char why[64];
    assert_int_equal(
        wd_session_share_found(t, &e, WD_EBACKEND, &none, "test", &got, why, sizeof why),
        WD_SHARE_FAILED);
    assert_int_equal(wd_sessions_lookup(t, &e, &loc), WD_SESSIONS_MISS);
    wd_sessions_free(t);
    wd_redis_free(r);
    wd_session_share_free(sh);
}

static int group_setup(void **state)
{
    atexit(kill_all_at_exit);
    signal(SIGPIPE, SIG_IGN);
    *state = srv_start(NULL);
    return *state ? 0 : -1;
}

static int group_teardown(void **state)
{
    srv_stop(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(sessions_are_shared_by_default_only_when_redis_is_configured),
        cmocka_unit_test(session_store_redis_without_redis_is_a_configuration_error),
        cmocka_unit_test(a_prefix_that_could_name_a_user_record_is_refused),
        cmocka_unit_test(a_write_never_outlives_the_token_nor_session_redis_ttl),
    };
    const struct CMUnitTest redis[] = {
        cmocka_unit_test(
            a_session_written_by_one_replica_is_found_by_another_and_deleted_by_its_owner),
        cmocka_unit_test(a_value_that_is_not_a_session_record_is_refused_and_left_in_place),
    };
    int failed = cmocka_run_group_tests_name("session_share", pure, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("session_share_redis", redis, group_setup, group_teardown);
    return failed;
}
