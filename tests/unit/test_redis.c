/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/store/redis.c against a real redis-server (no mocks). Each group starts
 * its own server as a child process on a free loopback high port in a temp dir, waits until
 * it answers (and checks through INFO that the answer comes from our child, not from some
 * other server on that port), and kills it by PID in the group teardown, which cmocka runs
 * after failed tests too. PR_SET_PDEATHSIG and an atexit handler cover a crashing test
 * binary. Nothing here measures timing tightly: bounds are generous, recovery is polled.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "core/wd.h"
#include "store/redis.h"

#include "redis_fixture.h"

static int group_plain_setup(void **state)
{
    atexit(kill_all_at_exit);
    signal(SIGPIPE, SIG_IGN);
    *state = srv_start(NULL);
    return *state ? 0 : -1;
}

static int group_auth_setup(void **state)
{
    struct srv *s = srv_start("s3cret pass");
    redisContext *c;
    redisReply *r;

    *state = s;
    if (!s)
        return -1;
    c = admin(s);
    if (!c)
        return -1;
    r = redisCommand(c, "ACL SETUSER warden on >wpass ~mqtt_* +hmget +hgetall +select +ping");
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    r = redisCommand(c, "HSET mqtt_user:alice password_hash h1");
    freeReplyObject(r);
    redisFree(c);
    return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
    srv_stop(*state);
    *state = NULL;
    return 0;
}

/* ---- helpers ---- */

static struct wd_redis *conn_opts(const struct srv *s, struct wd_redis_opts *o)
{
    struct wd_redis *r = NULL;
    o->port = s->port;
    if (!o->command_timeout_ms)
        o->command_timeout_ms = 2000;
    assert_int_equal(wd_redis_new(o, &r), WD_OK);
    return r;
}

static struct wd_redis *conn(const struct srv *s)
{
    struct wd_redis_opts o = {0};
    return conn_opts(s, &o);
}

/* a command of NUL-terminated words through the module's own argv path */
static int cmd(struct wd_redis *r, int argc, ...)
{
    const char *argv[16];
    size_t lens[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i] = va_arg(ap, const char *);
        lens[i] = strlen(argv[i]);
    }
    va_end(ap);
    return wd_redis__exec(r, argc, argv, lens, NULL);
}

static int hset_bin(struct wd_redis *r, const char *key, size_t klen, const char *field,
                    const char *val)
{
    const char *argv[4] = {"HSET", key, field, val};
    size_t lens[4] = {4, klen, strlen(field), strlen(val)};
    return wd_redis__exec(r, 4, argv, lens, NULL);
}

static int user(struct wd_redis *r, const char *key, struct wd_redis_user *u)
{
    return wd_redis_user_get(r, key, strlen(key), u);
}

/* ---- authentication lookups ---- */

static void user_found_not_found_and_without_password(void **state)
{
    struct wd_redis *r = conn(*state);
    struct wd_redis_user u;

    assert_int_equal(cmd(r, 8, "HSET", "mqtt_user:alice", "password_hash", "abc", "salt", "NaCl",
                         "is_superuser", "1"),
                     WD_OK);
    assert_int_equal(user(r, "mqtt_user:alice", &u), WD_OK);
    assert_memory_equal(u.hash, "abc", 4);
    assert_int_equal(u.hash_len, 3);
    assert_int_equal(u.salt_len, 4);
    assert_memory_equal(u.salt, "NaCl", 4);
    assert_true(u.is_superuser);
    assert_true(u.has_fields);
    struct wd_passwd_spec spec = {0};
    wd_redis_user_spec(&u, &spec);
    assert_ptr_equal(spec.hash, u.hash);
    assert_int_equal(spec.salt_len, 4);
    wd_redis_user_cleanup(&u);
    assert_null(u.hash);

    /* no such key: ENOENT and nothing present (EMQX: ignore) */
    assert_int_equal(user(r, "mqtt_user:nobody", &u), WD_ENOENT);
    assert_false(u.has_fields);
    assert_null(u.hash);
    wd_redis_user_cleanup(&u);

    /* a hash without password fields: ENOENT, but has_fields (EMQX: not_authorized) */
    assert_int_equal(cmd(r, 6, "HSET", "mqtt_user:nopw", "salt", "s", "is_superuser", "true"),
                     WD_OK);
    assert_int_equal(user(r, "mqtt_user:nopw", &u), WD_ENOENT);
    assert_true(u.has_fields);
    assert_null(u.hash);
    wd_redis_user_cleanup(&u);

    /* only unrelated fields: HMGET sees all nil, the same as no user */
    assert_int_equal(cmd(r, 4, "HSET", "mqtt_user:other", "colour", "blue"), WD_OK);
    assert_int_equal(user(r, "mqtt_user:other", &u), WD_ENOENT);
    assert_false(u.has_fields);
    wd_redis_user_cleanup(&u);

    /* missing salt is "", an empty hash is a hash */
    assert_int_equal(cmd(r, 4, "HSET", "mqtt_user:empty", "password_hash", ""), WD_OK);
    assert_int_equal(user(r, "mqtt_user:empty", &u), WD_OK);
    assert_int_equal(u.hash_len, 0);
    assert_non_null(u.salt);
    assert_int_equal(u.salt_len, 0);
    assert_false(u.is_superuser);
    wd_redis_user_cleanup(&u);
    wd_redis_free(r);
}

static void password_hash_is_preferred_over_password(void **state)
{
    struct wd_redis *r = conn(*state);
    struct wd_redis_user u;

    assert_int_equal(cmd(r, 6, "HSET", "mqtt_user:both", "password", "old", "password_hash", "new"),
                     WD_OK);
    assert_int_equal(user(r, "mqtt_user:both", &u), WD_OK);
    assert_string_equal(u.hash, "new");
    wd_redis_user_cleanup(&u);
    assert_int_equal(cmd(r, 4, "HSET", "mqtt_user:v4", "password", "legacy"), WD_OK);
    assert_int_equal(user(r, "mqtt_user:v4", &u), WD_OK);
    assert_string_equal(u.hash, "legacy");
    wd_redis_user_cleanup(&u);
    wd_redis_free(r);
}

static void is_superuser_truthiness_is_emqx_to_bool(void **state)
{
    static const struct {
        const char *v;
        bool want;
    } table[] = {
        {"true", true},  {"1", true},      {"2", true},
        {"+1", true},    {"007", true},    {"99999999999999999999999", true},
        {"TRUE", false}, {"True", false},  {"yes", false},
        {"", false},     {"0", false},     {"00", false},
        {"-1", false},   {"-0", false},    {"+0", false},
        {"1.0", false},  {" 1", false},    {"1 ", false},
        {"null", false}, {"false", false}, {"+", false},
        {"-", false},    {"0x1", false},
    };
    struct wd_redis *r = conn(*state);
    struct wd_redis_user u;

    for (size_t i = 0; i < WD_ARRAY_LEN(table); i++) {
        assert_int_equal(
            cmd(r, 6, "HSET", "mqtt_user:su", "password_hash", "h", "is_superuser", table[i].v),
            WD_OK);
        assert_int_equal(user(r, "mqtt_user:su", &u), WD_OK);
        if (u.is_superuser != table[i].want)
            fail_msg("is_superuser \"%s\": got %d", table[i].v, u.is_superuser);
        wd_redis_user_cleanup(&u);
    }
    assert_int_equal(cmd(r, 3, "HDEL", "mqtt_user:su", "is_superuser"), WD_OK);
    assert_int_equal(user(r, "mqtt_user:su", &u), WD_OK);
    assert_false(u.is_superuser); /* absent */
    wd_redis_user_cleanup(&u);
    wd_redis_free(r);
}

static void keys_of_the_wrong_type_are_backend_errors(void **state)
{
    struct wd_redis *r = conn(*state);
    struct wd_redis_user u;
    struct wd_acl_entry *e = NULL;
    size_t n = 0;

    assert_int_equal(cmd(r, 3, "SET", "mqtt_user:str", "x"), WD_OK);
    assert_int_equal(cmd(r, 4, "RPUSH", "mqtt_user:list", "a", "b"), WD_OK);
    assert_int_equal(user(r, "mqtt_user:str", &u), WD_EBACKEND);
    assert_non_null(strstr(wd_redis_last_error(r), "WRONGTYPE"));
    wd_redis_user_cleanup(&u);
    assert_int_equal(user(r, "mqtt_user:list", &u), WD_EBACKEND);
    wd_redis_user_cleanup(&u);
    assert_int_equal(wd_redis_acl_get(r, "mqtt_user:str", 13, &e, &n, NULL, NULL), WD_EBACKEND);
    assert_null(e);
    assert_int_equal(wd_redis_acl_get(r, "mqtt_user:list", 14, &e, &n, NULL, NULL), WD_EBACKEND);
    /* an error reply does not cost the connection */
    assert_true(wd_redis_is_connected(r));
    assert_int_equal(cmd(r, 4, "HSET", "mqtt_user:ok", "password_hash", "fine"), WD_OK);
    assert_int_equal(user(r, "mqtt_user:ok", &u), WD_OK);
    assert_string_equal(u.hash, "fine");
    wd_redis_user_cleanup(&u);
    wd_redis_free(r);
}

static void hostile_usernames_are_single_keys(void **state)
{
    struct wd_redis *r = conn(*state);
    struct wd_redis_user u;
    size_t biglen = 64 * 1024;
    char *big = malloc(biglen);
    char val[32];
    static const char inject[] = "x\r\n*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n";
    struct {
        const char *k;
        size_t len;
    } keys[] = {
        {"a b", 3},   {"*", 1}, {"KEYS *", 6}, {"x\r\nKEYS *\r\n", 11}, {inject, sizeof inject - 1},
        {"n\0ul", 4}, {"", 0},  {big, biglen},
    };

    for (size_t i = 0; i < biglen; i++)
        big[i] = (char)(i * 7 + 1);
    big[100] = '\0';
    big[200] = '\r';
    big[201] = '\n';

    /* before anything is stored, the wildcard-looking keys match nothing */
    assert_int_equal(cmd(r, 4, "HSET", "victim", "password_hash", "v"), WD_OK);
    for (size_t i = 0; i < WD_ARRAY_LEN(keys); i++) {
        assert_int_equal(wd_redis_user_get(r, keys[i].k, keys[i].len, &u), WD_ENOENT);
        wd_redis_user_cleanup(&u);
    }
    /* and the protocol stayed in step: the next answer is victim's own */
    assert_int_equal(user(r, "victim", &u), WD_OK);
    assert_string_equal(u.hash, "v");
    wd_redis_user_cleanup(&u);

    for (size_t i = 0; i < WD_ARRAY_LEN(keys); i++) {
        snprintf(val, sizeof val, "hash-%zu", i);
        assert_int_equal(hset_bin(r, keys[i].k, keys[i].len, "password_hash", val), WD_OK);
    }
    for (size_t i = 0; i < WD_ARRAY_LEN(keys); i++) {
        snprintf(val, sizeof val, "hash-%zu", i);
        assert_int_equal(wd_redis_user_get(r, keys[i].k, keys[i].len, &u), WD_OK);
        assert_string_equal(u.hash, val);
        wd_redis_user_cleanup(&u);
    }
    /* a prefix up to the NUL is a different key */
    assert_int_equal(wd_redis_user_get(r, "n", 1, &u), WD_ENOENT);
    wd_redis_user_cleanup(&u);
    assert_int_equal(wd_redis_user_get(r, big, 100, &u), WD_ENOENT);
    wd_redis_user_cleanup(&u);
    /* exactly one new key per stored name: 8 hostile + victim (+ keys from other tests) */
    long long exists = 0;
    const char *argv[3] = {"EXISTS", "x", "KEYS"};
    size_t lens[3] = {6, 1, 4};
    assert_int_equal(wd_redis__exec(r, 3, argv, lens, &exists), WD_OK);
    assert_int_equal(exists, 0);
    assert_int_equal(user(r, "victim", &u), WD_OK);
    assert_string_equal(u.hash, "v");
    wd_redis_user_cleanup(&u);
    free(big);
    wd_redis_free(r);
}

/* The rendered DN / peer address goes to Redis as one key, and reads exactly that key. */
static void cert_subjects_and_peerhosts_are_single_keys(void **state)
{
    struct wd_redis *r = conn(*state);
    struct wd_redis_user u;
    struct wd_redis_tmpl *dn = NULL, *ph = NULL;
    assert_int_equal(wd_redis_tmpl_compile("mqtt_user:${cert_subject}", &dn, NULL, 0), WD_OK);
    assert_int_equal(wd_redis_tmpl_compile("mqtt_user:${peerhost}", &ph, NULL, 0), WD_OK);
    static const char *const hostile[] = {
        "CN=a b,O=x", "CN=x\r\nKEYS *\r\n", "*", "{mqtt}", "CN={a}*?[b]", "1.2.3.4 \r\nPING",
    };
    assert_int_equal(cmd(r, 4, "HSET", "mqtt_user:victim", "password_hash", "v"), WD_OK);
    for (size_t i = 0; i < WD_ARRAY_LEN(hostile); i++) {
        struct wd_client c = {
            .username = "u", .clientid = "c", .dn = hostile[i], .peerhost = hostile[i]};
        char *k1 = NULL, *k2 = NULL;
        size_t l1 = 0, l2 = 0;
        assert_int_equal(wd_redis_tmpl_render(dn, &c, &k1, &l1), WD_OK);
        assert_int_equal(wd_redis_tmpl_render(ph, &c, &k2, &l2), WD_OK);
        assert_int_equal(l1, l2);
        assert_memory_equal(k1, k2, l1);
        /* nothing stored under it yet: not found, not victim's hash (no glob, no split) */
        assert_int_equal(wd_redis_user_get(r, k1, l1, &u), WD_ENOENT);
        assert_false(u.has_fields);
        wd_redis_user_cleanup(&u);
        char val[32];
        snprintf(val, sizeof val, "dn-%zu", i);
        assert_int_equal(hset_bin(r, k1, l1, "password_hash", val), WD_OK);
        assert_int_equal(wd_redis_user_get(r, k2, l2, &u), WD_OK);
        assert_string_equal(u.hash, val);
        wd_redis_user_cleanup(&u);
        free(k1);
        free(k2);
    }
    /* the protocol stayed in step and nothing else was written */
    assert_int_equal(user(r, "mqtt_user:victim", &u), WD_OK);
    assert_string_equal(u.hash, "v");
    wd_redis_user_cleanup(&u);
    long long exists = -1;
    const char *argv[3] = {"EXISTS", "KEYS", "PING"};
    size_t lens[3] = {6, 4, 4};
    assert_int_equal(wd_redis__exec(r, 3, argv, lens, &exists), WD_OK);
    assert_int_equal(exists, 0);
    wd_redis_tmpl_free(dn);
    wd_redis_tmpl_free(ph);
    wd_redis_free(r);
}

static void select_reads_the_configured_database(void **state)
{
    struct wd_redis_opts o = {.database = 3};
    struct wd_redis *r3 = conn_opts(*state, &o);
    struct wd_redis *r0 = conn(*state);
    struct wd_redis_user u;

    assert_int_equal(cmd(r3, 4, "HSET", "mqtt_user:db", "password_hash", "three"), WD_OK);
    assert_int_equal(cmd(r0, 4, "HSET", "mqtt_user:db", "password_hash", "zero"), WD_OK);
    assert_int_equal(user(r3, "mqtt_user:db", &u), WD_OK);
    assert_string_equal(u.hash, "three");
    wd_redis_user_cleanup(&u);
    assert_int_equal(user(r0, "mqtt_user:db", &u), WD_OK);
    assert_string_equal(u.hash, "zero");
    wd_redis_user_cleanup(&u);
    wd_redis_free(r3);
    wd_redis_free(r0);

    /* a database Redis does not have: SELECT fails, the call is a backend error */
    struct wd_redis_opts bad = {.database = 999};
    struct wd_redis *rb = conn_opts(*state, &bad);
    assert_int_equal(user(rb, "mqtt_user:db", &u), WD_EBACKEND);
    assert_non_null(strstr(wd_redis_last_error(rb), "SELECT"));
    wd_redis_free(rb);
}

static void unix_socket_connections_work(void **state)
{
    const struct srv *s = *state;
    struct wd_redis_opts o = {.unix_path = s->sock, .command_timeout_ms = 2000};
    struct wd_redis *r = NULL;
    struct wd_redis_user u;

    assert_int_equal(wd_redis_new(&o, &r), WD_OK);
    assert_int_equal(cmd(r, 4, "HSET", "mqtt_user:unix", "password_hash", "u"), WD_OK);
    assert_int_equal(user(r, "mqtt_user:unix", &u), WD_OK);
    assert_string_equal(u.hash, "u");
    wd_redis_user_cleanup(&u);
    wd_redis_free(r);
}

/* ---- authorization lookups ---- */

struct skipped {
    int n;
    char last[64];
};

static void count_skip(void *ud, const char *topic, size_t len, const char *reason)
{
    struct skipped *s = ud;
    s->n++;
    snprintf(s->last, sizeof s->last, "%.*s", (int)len, topic ? topic : "");
}

static void acl_hash_becomes_entries_and_bad_ones_are_reported(void **state)
{
    struct wd_redis *r = conn(*state);
    struct wd_acl_entry *e = NULL;
    size_t n = 0;
    struct skipped sk = {0};

    assert_int_equal(cmd(r, 10, "HSET", "mqtt_acl:emqx_u", "t/1", "subscribe", "t/2",
                         "{ \"action\": \"subscribe\", \"qos\": [1, 2] }", "t/3",
                         "{ \"action\": \"publish\", \"retain\": false }", "bad", "pub"),
                     WD_OK);
    assert_int_equal(
        cmd(r, 6, "HSET", "mqtt_acl:emqx_u", "eq t/${username}", "all", "x\r\ny", "all"), WD_OK);
    assert_int_equal(wd_redis_acl_get(r, "mqtt_acl:emqx_u", 15, &e, &n, count_skip, &sk), WD_OK);
    assert_int_equal(n, 5);
    assert_int_equal(sk.n, 1);
    assert_string_equal(sk.last, "bad");
    /* Redis returns small hashes in insertion order, but do not depend on it */
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].topic, "t/2") == 0) {
            assert_int_equal(e[i].actions, WD_ACL_SUBSCRIBE);
            assert_int_equal(e[i].qos_mask, 6);
            seen |= 1;
        } else if (strcmp(e[i].topic, "t/3") == 0) {
            assert_int_equal(e[i].actions, WD_ACL_PUBLISH);
            assert_int_equal(e[i].retain, 0);
            seen |= 2;
        } else if (strcmp(e[i].topic, "t/${username}") == 0) {
            assert_true(e[i].eq);
            seen |= 4;
        } else if (strcmp(e[i].topic, "x\r\ny") == 0) {
            seen |= 8;
        }
    }
    assert_int_equal(seen, 15);
    wd_acl_entries_free(e, n);

    /* a missing key is an empty ACL, not an error (EMQX: nomatch) */
    assert_int_equal(wd_redis_acl_get(r, "mqtt_acl:nobody", 15, &e, &n, count_skip, &sk), WD_OK);
    assert_null(e);
    assert_int_equal(n, 0);
    wd_redis_free(r);
}

/* ---- AUTH ---- */

static void auth_with_password_and_with_acl_user(void **state)
{
    const struct srv *s = *state;
    struct wd_redis_user u;
    struct wd_redis *r;

    struct wd_redis_opts pw = {.password = "s3cret pass"};
    r = conn_opts(s, &pw);
    assert_int_equal(user(r, "mqtt_user:alice", &u), WD_OK);
    assert_string_equal(u.hash, "h1");
    wd_redis_user_cleanup(&u);
    wd_redis_free(r);

    struct wd_redis_opts acl = {.username = "warden", .password = "wpass"};
    r = conn_opts(s, &acl);
    assert_int_equal(user(r, "mqtt_user:alice", &u), WD_OK);
    assert_string_equal(u.hash, "h1");
    wd_redis_user_cleanup(&u);
    /* the ACL user may read mqtt_* only: another key is an error reply (NOPERM) */
    assert_int_equal(user(r, "other:alice", &u), WD_EBACKEND);
    wd_redis_user_cleanup(&u);
    wd_redis_free(r);
}

static void wrong_or_missing_password_is_a_backend_error(void **state)
{
    const struct srv *s = *state;
    struct wd_redis_user u;
    struct wd_redis *r;

    struct wd_redis_opts bad = {.password = "wrong"};
    r = conn_opts(s, &bad);
    assert_int_equal(user(r, "mqtt_user:alice", &u), WD_EBACKEND);
    assert_non_null(strstr(wd_redis_last_error(r), "AUTH"));
    assert_null(strstr(wd_redis_last_error(r), "wrong")); /* the password is never echoed */
    assert_false(wd_redis_is_connected(r));
    /* backing off: fails again at once */
    assert_int_equal(user(r, "mqtt_user:alice", &u), WD_EBACKEND);
    wd_redis_free(r);

    struct wd_redis_opts baduser = {.username = "warden", .password = "nope"};
    r = conn_opts(s, &baduser);
    assert_int_equal(wd_redis_connect(r), WD_EBACKEND);
    wd_redis_free(r);

    struct wd_redis_opts none = {0};
    r = conn_opts(s, &none);
    assert_int_equal(user(r, "mqtt_user:alice", &u), WD_EBACKEND); /* NOAUTH */
    assert_non_null(strstr(wd_redis_last_error(r), "NOAUTH"));
    wd_redis_user_cleanup(&u);
    wd_redis_free(r);
}

/* ---- outages ---- */

static bool poll_until_ok(struct wd_redis *r, const char *key, unsigned max_ms)
{
    uint64_t deadline = mono_ms() + max_ms;
    while (mono_ms() < deadline) {
        struct wd_redis_user u;
        int rc = user(r, key, &u);
        wd_redis_user_cleanup(&u);
        if (rc == WD_OK)
            return true;
        sleep_ms(20);
    }
    return false;
}

static void stopped_redis_fails_fast_and_restarted_redis_recovers(void **state)
{
    struct srv *s = *state;
    struct wd_redis_opts o = {
        .command_timeout_ms = 500, .backoff_initial_ms = 20, .backoff_max_ms = 200};
    struct wd_redis *r = conn_opts(s, &o);
    struct wd_redis_user u;
    uint64_t t0;

    assert_int_equal(cmd(r, 4, "HSET", "mqtt_user:bob", "password_hash", "b"), WD_OK);
    assert_int_equal(user(r, "mqtt_user:bob", &u), WD_OK);
    wd_redis_user_cleanup(&u);

    srv_kill(s);
    t0 = mono_ms();
    for (int i = 0; i < 5; i++) {
        assert_int_equal(user(r, "mqtt_user:bob", &u), WD_EBACKEND);
        wd_redis_user_cleanup(&u);
    }
    assert_true(mono_ms() - t0 < 10000); /* no hang; each call is bounded */
    assert_false(wd_redis_is_connected(r));

    assert_true(srv_spawn(s)); /* same port, same dir; the data is gone (no persistence) */
    {
        redisContext *c = admin(s);
        assert_non_null(c);
        freeReplyObject(redisCommand(c, "HSET mqtt_user:bob password_hash b2"));
        redisFree(c);
    }
    assert_true(poll_until_ok(r, "mqtt_user:bob", 10000));
    assert_int_equal(user(r, "mqtt_user:bob", &u), WD_OK);
    assert_string_equal(u.hash, "b2");
    wd_redis_user_cleanup(&u);
    wd_redis_free(r);
}

static void paused_redis_times_out_and_recovers_after_resume(void **state)
{
    struct srv *s = *state;
    struct wd_redis_opts o = {
        .command_timeout_ms = 200, .backoff_initial_ms = 20, .backoff_max_ms = 200};
    struct wd_redis *r = conn_opts(s, &o);
    struct wd_redis_user u;
    struct wd_acl_entry *e = NULL;
    size_t n = 0;
    uint64_t t0;

    assert_int_equal(cmd(r, 4, "HSET", "mqtt_user:carol", "password_hash", "c"), WD_OK);
    assert_int_equal(user(r, "mqtt_user:carol", &u), WD_OK);
    wd_redis_user_cleanup(&u);

    assert_int_equal(kill(s->pid, SIGSTOP), 0);
    t0 = mono_ms();
    assert_int_equal(user(r, "mqtt_user:carol", &u), WD_EBACKEND);
    wd_redis_user_cleanup(&u);
    assert_true(mono_ms() - t0 < 5000);
    assert_non_null(strstr(wd_redis_last_error(r), "timed out"));
    /* later calls while paused: still bounded (fast while backing off, else one timeout) */
    t0 = mono_ms();
    for (int i = 0; i < 3; i++) {
        assert_int_equal(user(r, "mqtt_user:carol", &u), WD_EBACKEND);
        wd_redis_user_cleanup(&u);
        assert_int_equal(wd_redis_acl_get(r, "mqtt_acl:carol", 14, &e, &n, NULL, NULL),
                         WD_EBACKEND);
        sleep_ms(50);
    }
    assert_true(mono_ms() - t0 < 10000);
    assert_int_equal(kill(s->pid, SIGCONT), 0);
    assert_true(poll_until_ok(r, "mqtt_user:carol", 10000));
    wd_redis_free(r);
}

/* ---- no server needed ---- */

static void unreachable_redis_fails_fast_while_backing_off(void **state)
{
    /* a bound socket that does not listen: connections to it are refused */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);

    struct wd_redis_opts o = {.port = ntohs(a.sin_port), .backoff_initial_ms = 5000};
    struct wd_redis *r = NULL;
    struct wd_redis_user u;
    assert_int_equal(wd_redis_new(&o, &r), WD_OK);
    assert_int_equal(user(r, "k", &u), WD_EBACKEND);
    assert_non_null(strstr(wd_redis_last_error(r), "connect"));
    uint64_t t0 = mono_ms();
    for (int i = 0; i < 100; i++) {
        assert_int_equal(user(r, "k", &u), WD_EBACKEND);
        wd_redis_user_cleanup(&u);
    }
    assert_true(mono_ms() - t0 < 2000); /* no connect attempts: backing off */
    assert_non_null(strstr(wd_redis_last_error(r), "backing off"));
    wd_redis_free(r);
    close(fd);
}

static void new_rejects_bad_options(void **state)
{
    struct wd_redis *r = (void *)1;
    struct wd_redis_opts o = {.port = 70000};
    assert_int_equal(wd_redis_new(&o, &r), WD_EINVAL);
    assert_null(r);
    o = (struct wd_redis_opts){.database = -1};
    assert_int_equal(wd_redis_new(&o, &r), WD_EINVAL);
    assert_int_equal(wd_redis_new(NULL, &r), WD_EINVAL);
    wd_redis_free(NULL);
}

static void render(const char *tmpl, const struct wd_client *c, const char *want, size_t wantlen)
{
    struct wd_redis_tmpl *t = NULL;
    char err[160], *k = NULL;
    size_t klen = 0;
    if (wd_redis_tmpl_compile(tmpl, &t, err, sizeof err) != WD_OK)
        fail_msg("%s: %s", tmpl, err);
    assert_int_equal(wd_redis_tmpl_render(t, c, &k, &klen), WD_OK);
    assert_int_equal(klen, wantlen);
    assert_memory_equal(k, want, wantlen);
    free(k);
    wd_redis_tmpl_free(t);
}

static void templates_render_username_clientid_and_cn(void **state)
{
    struct wd_client c = {.username = "al ice*\r\n", .clientid = "c1", .cn = "CN=x"};
    render("mqtt_user:${username}", &c, "mqtt_user:al ice*\r\n", 19);
    render("${clientid}-${cn}-${cert_common_name}", &c, "c1-CN=x-CN=x", 12);
    render("a${$}{username}$x$", &c, "a${username}$x$", 15);
    render("plain", &c, "plain", 5);
    render("", &c, "", 0);
    c.username = ""; /* no username: renders empty, as EMQX's query rendering */
    render("mqtt_user:${username}", &c, "mqtt_user:", 10);
    c.username = NULL;
    render("mqtt_acl:${username}", &c, "mqtt_acl:", 9);
}

static void templates_with_unknown_placeholders_are_config_errors(void **state)
{
    static const char *bad[] = {
        "mqtt_user:${cert_pem}", "mqtt_user:${username", "${}",     "${user name}",
        "${password}",           "x${client_attrs.a}",   "${zone}", "${peer_host}",
        "${Cert_Subject}"};
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        struct wd_redis_tmpl *t = (void *)1;
        char err[160];
        assert_int_equal(wd_redis_tmpl_compile(bad[i], &t, err, sizeof err), WD_EINVAL);
        assert_null(t);
        assert_true(strlen(err) > 0);
    }
    struct wd_redis_tmpl *t = NULL;
    char err[160];
    assert_int_equal(wd_redis_tmpl_compile("${zone}", &t, err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "${zone}"));
}

/* Issue 8: EMQX's Redis authenticator and authorizer accept ${cert_subject} (ClientInfo.dn)
 * and ${peerhost}; warden refused them as unknown placeholders. */
static void templates_accept_cert_subject_and_peerhost_as_emqx_does(void **state)
{
    (void)state;
    struct wd_client c = {.username = "u",
                          .clientid = "c1",
                          .cn = "dev 1",
                          .dn = "CN=dev 1,O=Acme\\, Inc.,C=DE",
                          .peerhost = "::1"};
    render("mqtt_user:${cert_subject}", &c, "mqtt_user:CN=dev 1,O=Acme\\, Inc.,C=DE",
           sizeof "mqtt_user:CN=dev 1,O=Acme\\, Inc.,C=DE" - 1);
    render("mqtt_acl:${peerhost}", &c, "mqtt_acl:::1", sizeof "mqtt_acl:::1" - 1);
    render("${dn}|${peerhost}|${cn}|${username}", &c, "CN=dev 1,O=Acme\\, Inc.,C=DE|::1|dev 1|u",
           sizeof "CN=dev 1,O=Acme\\, Inc.,C=DE|::1|dev 1|u" - 1);
    /* hostile values are inserted as bytes: one key whatever they hold */
    c.dn = "CN=*\r\nKEYS *\r\n{tag} x";
    c.peerhost = "1.2.3.4 {x}*\r\n";
    render("k:${cert_subject}", &c, "k:CN=*\r\nKEYS *\r\n{tag} x",
           sizeof "k:CN=*\r\nKEYS *\r\n{tag} x" - 1);
    render("k:${peerhost}", &c, "k:1.2.3.4 {x}*\r\n", sizeof "k:1.2.3.4 {x}*\r\n" - 1);
}

/* A client without a certificate has no subject: EMQX renders "" and reads `mqtt_user:`,
 * one key shared by every such client. warden renders no key at all (the caller treats
 * the client as not found and does no lookup). */
static void empty_certificate_or_peer_values_render_no_key(void **state)
{
    (void)state;
    static const char *const tmpls[] = {"mqtt_user:${cert_subject}", "mqtt_user:${dn}",
                                        "mqtt_acl:${peerhost}", "x${cn}y",
                                        "${username}:${cert_common_name}"};
    struct wd_client none = {.username = "u", .clientid = "c1", .cn = "", .dn = "", .peerhost = ""};
    struct wd_client nulls = {.username = "u", .clientid = "c1"};
    for (size_t i = 0; i < WD_ARRAY_LEN(tmpls); i++) {
        struct wd_redis_tmpl *t = NULL;
        assert_int_equal(wd_redis_tmpl_compile(tmpls[i], &t, NULL, 0), WD_OK);
        char *k = (void *)1;
        size_t klen = 7;
        assert_int_equal(wd_redis_tmpl_render(t, &none, &k, &klen), WD_ENOENT);
        assert_null(k);
        assert_int_equal(klen, 0);
        k = (void *)1;
        assert_int_equal(wd_redis_tmpl_render(t, &nulls, &k, &klen), WD_ENOENT);
        assert_null(k);
        wd_redis_tmpl_free(t);
    }
    /* username and clientid keep EMQX's rendering (documented) */
    struct wd_client anon = {.username = "", .clientid = ""};
    render("mqtt_user:${username}${clientid}", &anon, "mqtt_user:", 10);
}

static void rendered_keys_are_bounded(void **state)
{
    size_t n = WD_REDIS_KEY_MAX / 2 + 1;
    char *big = malloc(n + 1);
    struct wd_redis_tmpl *t = NULL;
    char *k = (void *)1;
    size_t klen = 7;
    memset(big, 'u', n);
    big[n] = '\0';
    struct wd_client c = {.username = big, .clientid = big, .cn = ""};
    assert_int_equal(wd_redis_tmpl_compile("${username}${clientid}", &t, NULL, 0), WD_OK);
    assert_int_equal(wd_redis_tmpl_render(t, &c, &k, &klen), WD_ETOOBIG);
    assert_null(k);
    assert_int_equal(klen, 0);
    wd_redis_tmpl_free(t);
    free(big);
}

int main(void)
{
    const struct CMUnitTest offline[] = {
        cmocka_unit_test(new_rejects_bad_options),
        cmocka_unit_test(templates_render_username_clientid_and_cn),
        cmocka_unit_test(templates_with_unknown_placeholders_are_config_errors),
        cmocka_unit_test(templates_accept_cert_subject_and_peerhost_as_emqx_does),
        cmocka_unit_test(empty_certificate_or_peer_values_render_no_key),
        cmocka_unit_test(rendered_keys_are_bounded),
        cmocka_unit_test(unreachable_redis_fails_fast_while_backing_off),
    };
    const struct CMUnitTest plain[] = {
        cmocka_unit_test(user_found_not_found_and_without_password),
        cmocka_unit_test(password_hash_is_preferred_over_password),
        cmocka_unit_test(is_superuser_truthiness_is_emqx_to_bool),
        cmocka_unit_test(keys_of_the_wrong_type_are_backend_errors),
        cmocka_unit_test(hostile_usernames_are_single_keys),
        cmocka_unit_test(cert_subjects_and_peerhosts_are_single_keys),
        cmocka_unit_test(select_reads_the_configured_database),
        cmocka_unit_test(unix_socket_connections_work),
        cmocka_unit_test(acl_hash_becomes_entries_and_bad_ones_are_reported),
    };
    const struct CMUnitTest auth[] = {
        cmocka_unit_test(auth_with_password_and_with_acl_user),
        cmocka_unit_test(wrong_or_missing_password_is_a_backend_error),
    };
    const struct CMUnitTest outage[] = {
        cmocka_unit_test(stopped_redis_fails_fast_and_restarted_redis_recovers),
        cmocka_unit_test(paused_redis_times_out_and_recovers_after_resume),
    };
    int failed = 0;
    signal(SIGPIPE, SIG_IGN);
    failed += cmocka_run_group_tests_name("redis_offline", offline, NULL, NULL);
    failed += cmocka_run_group_tests_name("redis_plain", plain, group_plain_setup, group_teardown);
    failed += cmocka_run_group_tests_name("redis_auth", auth, group_auth_setup, group_teardown);
    failed +=
        cmocka_run_group_tests_name("redis_outage", outage, group_plain_setup, group_teardown);
    kill_all_at_exit();
    return failed ? 1 : 0;
}
