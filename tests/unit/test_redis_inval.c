/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/store/redis_inval.c: the prefix reduction (pure), and the subscriber
 * against a real redis-server (redis_fixture.h): armed, keys under the prefixes delivered and
 * others not, a flushed database, a killed connection (lost, then armed again), stop. The
 * subscriber's thread is observed through counters polled with a deadline, never slept on.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "core/log.h"
#include "core/wd.h"
#include "store/redis_inval.h"

#include "redis_fixture.h"

#define DEADLINE_MS 10000

static void prefixes_keep_the_shortest_of_overlapping_ones(void **state)
{
    (void)state;
    const char *a[] = {"mqtt_user:", "mqtt_acl:"};
    assert_int_equal(wd_redis_inval_prefixes(a, 2), 2);
    const char *b[] = {"mqtt:acl:", "mqtt:"};
    assert_int_equal(wd_redis_inval_prefixes(b, 2), 1);
    assert_string_equal(b[0], "mqtt:");
    const char *c[] = {"u:", "u:"};
    assert_int_equal(wd_redis_inval_prefixes(c, 2), 1);
    assert_string_equal(c[0], "u:");
    const char *d[] = {"u:", ""}; /* a template that starts with a placeholder: every key */
    assert_int_equal(wd_redis_inval_prefixes(d, 2), 0);
}

struct seen {
    pthread_mutex_t mu;
    int lost, armed, flushed;
    char keys[16][64];
    int nkeys;
};

static void on_lost(void *ctx)
{
    struct seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->lost++;
    pthread_mutex_unlock(&s->mu);
}

static void on_armed(void *ctx)
{
    struct seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->armed++;
    pthread_mutex_unlock(&s->mu);
}

static void on_keys(void *ctx, const char *const *keys, const size_t *lens, size_t n)
{
    struct seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (n == 0)
        s->flushed++;
    for (size_t i = 0; i < n && s->nkeys < 16; i++)
        snprintf(s->keys[s->nkeys++], 64, "%.*s", (int)lens[i], keys[i]);
    pthread_mutex_unlock(&s->mu);
}

static int read_int(struct seen *s, const int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static bool wait_int(struct seen *s, const int *field, int want)
{
    uint64_t end = mono_ms() + DEADLINE_MS;
    while (read_int(s, field) < want) {
        if (mono_ms() > end)
            return false;
        sleep_ms(2);
    }
    return true;
}

static void cmd(redisContext *c, const char *text)
{
    redisReply *r = redisCommand(c, text);
    assert_non_null(r);
    freeReplyObject(r);
}

static void subscriber_delivers_tracked_keys_and_rearms_after_a_kill(void **state)
{
    (void)state;
    struct srv *srv = srv_start(NULL);
    assert_non_null(srv);
    redisContext *a = admin(srv);
    assert_non_null(a);
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct wd_redis_opts o = {
        .host = "127.0.0.1", .port = srv->port, .backoff_initial_ms = 10, .backoff_max_ms = 50};
    const char *prefixes[] = {"u:", "acl:"};
    struct wd_redis_inval_ops ops = {on_lost, on_armed, on_keys};
    struct wd_redis_inval *v;
    assert_int_equal(wd_redis_inval_start(&o, prefixes, 2, &ops, &s, &v), WD_OK);
    assert_true(wait_int(&s, &s.armed, 1));
    assert_int_equal(read_int(&s, &s.lost), 1); /* before the first connect */

    /* invalidations come in write order: once acl:bob is seen, other:x would have been */
    cmd(a, "SET other:x 1");
    cmd(a, "HSET u:alice f 1");
    cmd(a, "HSET acl:bob t publish");
    assert_true(wait_int(&s, &s.nkeys, 2));
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.nkeys, 2);
    assert_string_equal(s.keys[0], "u:alice");
    assert_string_equal(s.keys[1], "acl:bob");
    pthread_mutex_unlock(&s.mu);

    cmd(a, "FLUSHALL");
    assert_true(wait_int(&s, &s.flushed, 1));

    cmd(a, "CLIENT KILL TYPE pubsub");
    assert_true(wait_int(&s, &s.lost, 2));
    assert_true(wait_int(&s, &s.armed, 2));
    cmd(a, "SET u:carol 1");
    assert_true(wait_int(&s, &s.nkeys, 3));
    pthread_mutex_lock(&s.mu);
    assert_string_equal(s.keys[2], "u:carol");
    pthread_mutex_unlock(&s.mu);

    struct wd_redis_inval_stats st;
    wd_redis_inval_stats(v, &st);
    assert_int_equal(st.arms, 2);
    assert_int_equal(st.losses, 1);
    wd_redis_inval_stop(v);
    assert_int_equal(read_int(&s, &s.lost), 3); /* stopping loses the stream too */
    redisFree(a);
    srv_stop(srv);
}

static void an_unreachable_redis_is_retried_until_it_answers(void **state)
{
    (void)state;
    struct srv *srv = srv_start(NULL);
    assert_non_null(srv);
    int port = srv->port;
    srv_kill(srv);
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct wd_redis_opts o = {
        .host = "127.0.0.1", .port = port, .backoff_initial_ms = 10, .backoff_max_ms = 50};
    struct wd_redis_inval_ops ops = {on_lost, on_armed, on_keys};
    struct wd_redis_inval *v;
    assert_int_equal(wd_redis_inval_start(&o, NULL, 0, &ops, &s, &v), WD_OK);
    assert_true(srv_spawn(srv));
    assert_true(wait_int(&s, &s.armed, 1));
    wd_redis_inval_stop(v);
    srv_stop(srv);
}

/* INFO stats' total_connections_received of the server behind `a`, or -1. */
static long connections_received(redisContext *a)
{
    redisReply *r = redisCommand(a, "INFO stats");
    long n = -1;
    const char *at =
        r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "total_connections_received:") : NULL;
    if (at)
        n = strtol(at + strlen("total_connections_received:"), NULL, 10);
    freeReplyObject(r);
    return n;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* A set-up step that keeps failing (AUTH with a wrong password) is retried with backoff and
 * logged once for the whole streak, with Redis' reason; before, every retry logged
 * "AUTH refused" without one (a line every 5 s for as long as the password was wrong). */
static void a_failing_set_up_is_logged_once_with_its_reason(void **state)
{
    (void)state;
    struct srv *srv = srv_start(NULL);
    assert_non_null(srv);
    redisContext *a = admin(srv);
    assert_non_null(a);
    cmd(a, "ACL SETUSER warden on >right-password ~* &* +@all");
    char logpath[] = "/tmp/wd_test_inval_log_XXXXXX";
    int fd = mkstemp(logpath);
    assert_true(fd >= 0);
    wd_log_set_fd(fd);
    wd_log_set_level(WD_LOG_INFO);

    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct wd_redis_opts o = {.host = "127.0.0.1",
                              .port = srv->port,
                              .username = "warden",
                              .password = "wrong-password",
                              .backoff_initial_ms = 5,
                              .backoff_max_ms = 20};
    struct wd_redis_inval_ops ops = {on_lost, on_armed, on_keys};
    struct wd_redis_inval *v;
    long before = connections_received(a);
    assert_true(before > 0);
    assert_int_equal(wd_redis_inval_start(&o, NULL, 0, &ops, &s, &v), WD_OK);
    uint64_t end = mono_ms() + DEADLINE_MS;
    while (connections_received(a) < before + 5) { /* five attempts, all refused */
        assert_true(mono_ms() < end);
        sleep_ms(2);
    }
    assert_int_equal(read_int(&s, &s.armed), 0);
    cmd(a, "ACL SETUSER warden >wrong-password"); /* now it is right */
    assert_true(wait_int(&s, &s.armed, 1));
    wd_redis_inval_stop(v);
    wd_log_set_fd(2);

    char text[8192];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    unlink(logpath);
    assert_true(n > 0);
    text[n] = '\0';
    if (count_of(text, "cache invalidation: AUTH") != 1 || !strstr(text, "WRONGPASS"))
        fail_msg("want one AUTH line with Redis' reason, got:\n%s", text);
    assert_null(strstr(text, "wrong-password")); /* the password is never logged */
    redisFree(a);
    srv_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prefixes_keep_the_shortest_of_overlapping_ones),
        cmocka_unit_test(subscriber_delivers_tracked_keys_and_rearms_after_a_kill),
        cmocka_unit_test(an_unreachable_redis_is_retried_until_it_answers),
        cmocka_unit_test(a_failing_set_up_is_logged_once_with_its_reason),
    };
    kill_all_at_exit();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
