/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the engine's credential stores (src/engine/backends.c) through the engine
 * API, against a real redis-server (tests/unit/redis_fixture.h): single-flight of identical
 * credential checks, failure decisions, sessions and admin flushes. Counters are process
 * wide: tests compare deltas. Nothing measures time: tests that need it to pass move the
 * engine's clock (core/clock.h) by hand.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "engine/engine.h"
#include "engine_fixture.h"
#include "store/passwd.h"

static int setup(void **state)
{
    (void)state;
    return fixture_setup("wd_test_backends");
}

static int teardown(void **state)
{
    (void)state;
    return fixture_teardown();
}

/* An engine on this policy with Redis at the fixture, plus `extra` directives (KEY=VALUE;
 * separated by ';'). */
static struct wd_engine *engine_with(const char *policy, const char *extra)
{
    return fixture_engine(policy, "redis_timeout=300ms", extra);
}

static struct wd_client client(const char *user, const char *clientid, uint32_t peerport)
{
    struct wd_client c = {.node = "n",
                          .clientid = clientid,
                          .username = user,
                          .peerhost = "10.0.0.7",
                          .peerport = peerport,
                          .protocol = "mqtt",
                          .mountpoint = "",
                          .cn = "",
                          .dn = ""};
    return c;
}

static enum wd_decision authn(struct wd_engine_local *l, const char *user, const char *cid,
                              const char *pw)
{
    struct wd_authn_req r = {
        .client = client(user, cid, 5000), .password = pw, .password_len = strlen(pw)};
    struct wd_verdict v;
    wd_engine_authenticate(l, &r, &v);
    return v.decision;
}

static enum wd_decision authz(struct wd_engine_local *l, const char *user, const char *cid,
                              const char *topic)
{
    struct wd_authz_req r = {.client = client(user, cid, 5000),
                             .action = WD_ACTION_PUBLISH,
                             .topic = topic,
                             .topic_len = strlen(topic),
                             .qos = -1,
                             .retain = -1};
    struct wd_verdict v;
    wd_engine_authorize(l, &r, &v);
    return v.decision;
}

static const char POLICY[] = "authn redis\n"
                             "authn default deny\n"
                             "allow all [\"#\", \"$SYS/#\"] when superuser\n"
                             "rules redis\n"
                             "authz default deny\n";

/* ---- single-flight ---- */

struct storm {
    struct wd_engine *e;
    pthread_barrier_t *go;
    const char *user, *pw;
    enum wd_decision got;
};

static void *storm_one(void *arg)
{
    struct storm *s = arg;
    struct wd_engine_local *l = wd_engine_local_new(s->e);
    pthread_barrier_wait(s->go);
    s->got = authn(l, s->user, "dev-x", s->pw);
    wd_engine_local_free(l);
    return NULL;
}

/* N concurrent logins of one user; returns how many password hashes were computed. */
static uint64_t storm(struct wd_engine *e, const char *user, const char *pw, enum wd_decision want)
{
    enum { N = 12 };
    pthread_t t[N];
    struct storm s[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    uint64_t before = wd_metrics_get(WD_M_PASSWD_CHECKS);
    for (int i = 0; i < N; i++) {
        s[i] = (struct storm){.e = e, .go = &go, .user = user, .pw = pw};
        pthread_create(&t[i], NULL, storm_one, &s[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(s[i].got, want);
    }
    pthread_barrier_destroy(&go);
    return wd_metrics_get(WD_M_PASSWD_CHECKS) - before;
}

/* The same for a static policy user with a bcrypt secret: one bcrypt per user and
 * password, also for a wrong password; a policy reload (new generation) checks again. */
static void a_static_bcrypt_user_storm_costs_one_bcrypt(void **state)
{
    (void)state;
    char *hash = NULL, pol[512];
    assert_int_equal(wd_passwd_hash("bcrypt:8", "ops-pw", 6, &hash), WD_OK);
    snprintf(pol, sizeof pol, "user \"ops\" \"%s\"\nauthn users\nauthn default deny\n", hash);
    wd_passwd_secret_free(hash);
    struct wd_engine *e = engine_with(pol, NULL);
    assert_int_equal(storm(e, "ops", "ops-pw", WD_DECISION_ALLOW), 1);
    assert_int_equal(storm(e, "ops", "ops-pw", WD_DECISION_ALLOW), 0); /* cached */
    assert_int_equal(storm(e, "ops", "guess", WD_DECISION_DENY), 1);
    char *report = NULL;
    assert_int_equal(wd_engine_reload(e, &report), WD_OK);
    free(report);
    assert_int_equal(storm(e, "ops", "ops-pw", WD_DECISION_ALLOW), 1);
    wd_engine_free(e);
}

/* A reconnect storm of one bcrypt user with a cold cache: every CONNECT is answered, and
 * Redis (and bcrypt) are asked once: the others waited for that answer. */
static void identical_concurrent_checks_ask_redis_once(void **state)
{
    (void)state;
    char *hash = NULL;
    assert_int_equal(wd_passwd_hash("bcrypt:8", "fleet-pw", 8, &hash), WD_OK);
    redis_cmd("HSET mqtt_user:fleet password_hash %s", hash + strlen("bcrypt:"));
    wd_passwd_secret_free(hash);
    /* cache_invalidation off: tracking caches nothing from Redis until its stream is up */
    struct wd_engine *e = engine_with(POLICY, "redis_password_hash=bcrypt;cache_invalidation=off");

    uint64_t lookups = wd_metrics_get(WD_M_REDIS_LOOKUPS);
    assert_int_equal(storm(e, "fleet", "fleet-pw", WD_DECISION_ALLOW), 1);
    assert_int_equal(wd_metrics_get(WD_M_REDIS_LOOKUPS) - lookups, 1);
    wd_engine_free(e);
}

/* ---- failure decisions ---- */

static void redis_down_denies_or_goes_on_as_configured(void **state)
{
    (void)state;
    redis_cmd("HSET mqtt_user:ann password_hash redis-pw");
    const char *chain = "authn redis\n"
                        "authn users\n"
                        "authn default deny\n"
                        "user \"ann\" \"plain:local\"\n"
                        "allow all \"#\"\n";
    struct wd_engine *e_deny = engine_with(chain, "cache=off;redis_password_hash=plain");
    struct wd_engine *e_next =
        engine_with(chain, "cache=off;redis_password_hash=plain;redis_on_error=next");
    struct wd_engine_local *ld = wd_engine_local_new(e_deny), *ln = wd_engine_local_new(e_next);
    /* Redis up: ann is a Redis user with another password: denied by Redis in both */
    assert_int_equal(authn(ld, "ann", "c1", "local"), WD_DECISION_DENY);
    assert_int_equal(authn(ln, "ann", "c1", "local"), WD_DECISION_DENY);

    srv_kill(g_srv);
    assert_int_equal(authn(ld, "ann", "c1", "local"), WD_DECISION_DENY);  /* fail closed */
    assert_int_equal(authn(ln, "ann", "c1", "local"), WD_DECISION_ALLOW); /* static user */
    assert_true(srv_spawn(g_srv));
    wd_engine_local_free(ld);
    wd_engine_local_free(ln);
    wd_engine_free(e_deny);
    wd_engine_free(e_next);
}

/* ---- sessions ---- */

static void redis_superuser_session_reaches_the_superuser_rule_until_disconnect(void **state)
{
    (void)state;
    redis_cmd("HSET mqtt_user:root password_hash rootpw is_superuser 1");
    struct wd_engine *e = engine_with(POLICY, "redis_password_hash=plain");
    struct wd_engine_local *l = wd_engine_local_new(e);
    assert_int_equal(authn(l, "root", "r1", "rootpw"), WD_DECISION_ALLOW);
    assert_int_equal(authz(l, "root", "r1", "$SYS/brokers"), WD_DECISION_ALLOW);
    /* another client id never authenticated here: no session, no superuser */
    assert_int_equal(authz(l, "root", "r2", "$SYS/brokers"), WD_DECISION_DENY);

    /* a disconnect from another connection (other peer port) leaves the session */
    struct wd_client other = client("root", "r1", 5001);
    wd_engine_client_disconnected(l, &other);
    assert_int_equal(authz(l, "root", "r1", "$SYS/brokers"), WD_DECISION_ALLOW);
    struct wd_client same = client("root", "r1", 5000);
    wd_engine_client_disconnected(l, &same);
    assert_int_equal(authz(l, "root", "r1", "$SYS/brokers"), WD_DECISION_DENY);
    wd_engine_local_free(l);
    wd_engine_free(e);
}

/* ---- superuser: only what authenticated this connection (issue 8) ---- */

#define SU_JWT_SECRET "superuser-test-secret-of-32-bytes!"

/* An HS256 token with this payload (a JSON object), signed with SU_JWT_SECRET. */
static char *su_jwt(const char *payload)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    struct wd_buf b = {0};
    wd_base64_encode(&b, hdr, strlen(hdr), WD_BASE64_URL);
    wd_buf_puts(&b, ".");
    wd_base64_encode(&b, payload, strlen(payload), WD_BASE64_URL);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    HMAC(EVP_sha256(), SU_JWT_SECRET, (int)strlen(SU_JWT_SECRET), (const unsigned char *)b.s, b.len,
         mac, &maclen);
    wd_buf_puts(&b, ".");
    wd_base64_encode(&b, mac, maclen, WD_BASE64_URL);
    return b.s;
}

/* authenticate, then subscribe "#", as the connection peer 10.0.0.7:port */
static enum wd_decision su_authn(struct wd_engine_local *l, const char *user, const char *cid,
                                 const char *pw, uint32_t port, unsigned *line)
{
    struct wd_authn_req r = {
        .client = client(user, cid, port), .password = pw, .password_len = strlen(pw)};
    struct wd_verdict v;
    wd_engine_authenticate(l, &r, &v);
    *line = v.line;
    return v.decision;
}

static enum wd_decision su_all(struct wd_engine_local *l, const char *user, const char *cid,
                               uint32_t port)
{
    struct wd_authz_req r = {.client = client(user, cid, port),
                             .action = WD_ACTION_SUBSCRIBE,
                             .topic = "#",
                             .topic_len = 1,
                             .qos = -1,
                             .retain = -1};
    struct wd_verdict v;
    wd_engine_authorize(l, &r, &v);
    return v.decision;
}

enum { SU_USERS, SU_JWT, SU_REDIS, SU_ALLOW_WHEN, SU_ANON, SU_NSTEPS };
static const char *const su_step_text[SU_NSTEPS] = {
    "authn users",           "authn jwt",
    "authn redis",           "authn allow when clientid ~ \"sensor-[0-9]+\"",
    "authn anonymous allow",
};

/* The policy of the issue with the five steps in this order; *lines gets each step's line. */
static void su_policy(const int *order, char *out, size_t cap, unsigned *lines)
{
    size_t n = (size_t)snprintf(out, cap, "user \"ops\" \"plain:ops-pw\" superuser\n");
    for (int i = 0; i < SU_NSTEPS; i++) {
        n += (size_t)snprintf(out + n, cap - n, "%s\n", su_step_text[order[i]]);
        lines[order[i]] = (unsigned)i + 2;
    }
    snprintf(out + n, cap - n,
             "authn default deny\n"
             "allow all [\"#\", \"$SYS/#\"] when superuser\n"
             "authz default deny\n");
}

static void su_check_order(const int *order, const char *jwt_plain, const char *jwt_su)
{
    char pol[1024], what[128];
    unsigned lines[SU_NSTEPS], line;
    su_policy(order, pol, sizeof pol, lines);
    snprintf(what, sizeof what, "order %d%d%d%d%d", order[0], order[1], order[2], order[3],
             order[4]);
    struct wd_engine *e = engine_with(pol, "jwt_secret=" SU_JWT_SECRET ";jwt_on_invalid=next;"
                                           "redis_password_hash=plain");
    struct wd_engine_local *l = wd_engine_local_new(e);

    /* the legitimate static superuser, with its password: everything */
    if (su_authn(l, "ops", "ops-console", "ops-pw", 5000, &line) != WD_DECISION_ALLOW ||
        line != lines[SU_USERS] || su_all(l, "ops", "ops-console", 5000) != WD_DECISION_ALLOW)
        fail_msg("%s: ops with its password is not a superuser", what);

    /* 1. its own JWT (no superuser claim) under the name ops */
    su_authn(l, "ops", "j-1", jwt_plain, 5001, &line);
    if (su_all(l, "ops", "j-1", 5001) != WD_DECISION_DENY)
        fail_msg("%s: a JWT login named ops got '#'", what);
    /* 2. a clientid that `authn allow when` lets in, username ops, a wrong password */
    su_authn(l, "ops", "sensor-1", "wrong", 5002, &line);
    if (su_all(l, "ops", "sensor-1", 5002) != WD_DECISION_DENY)
        fail_msg("%s: sensor-1 named ops with a wrong password got '#'", what);
    /* anonymous, and a name with no password at all */
    su_authn(l, "", "sensor-2", "", 5003, &line);
    if (su_all(l, "", "sensor-2", 5003) != WD_DECISION_DENY)
        fail_msg("%s: an anonymous client got '#'", what);
    su_authn(l, "ops", "x-1", "", 5004, &line);
    if (su_all(l, "ops", "x-1", 5004) != WD_DECISION_DENY)
        fail_msg("%s: ops with no password got '#'", what);

    /* 3. ops logged in legitimately on clientid sensor-9; then someone else uses that
     * clientid and name from another connection */
    enum wd_decision d = su_authn(l, "ops", "sensor-9", "ops-pw", 6000, &line);
    bool legit = d == WD_DECISION_ALLOW && line == lines[SU_USERS];
    if (su_all(l, "ops", "sensor-9", 6000) != (legit ? WD_DECISION_ALLOW : WD_DECISION_DENY))
        fail_msg("%s: sensor-9's superuser does not follow the step that let it in", what);
    d = su_authn(l, "ops", "sensor-9", "wrong", 6001, &line);
    if (su_all(l, "ops", "sensor-9", 6001) != WD_DECISION_DENY)
        fail_msg("%s: a second login on ops's clientid took its superuser", what);
    /* the first connection: a later login that warden allowed replaced its session (EMQX
     * kicks it); a refused one changes nothing for it */
    enum wd_decision want = legit && d != WD_DECISION_ALLOW ? WD_DECISION_ALLOW : WD_DECISION_DENY;
    if (su_all(l, "ops", "sensor-9", 6000) != want)
        fail_msg("%s: the first connection on sensor-9 got %s after a %s second login", what,
                 wd_decision_str(want == WD_DECISION_ALLOW ? WD_DECISION_DENY : WD_DECISION_ALLOW),
                 wd_decision_str(d));
    /* the same after a JWT login under ops's name on ops's clientid */
    su_authn(l, "ops", "shared-1", "ops-pw", 6100, &line);
    assert_int_equal(su_all(l, "ops", "shared-1", 6100), WD_DECISION_ALLOW);
    d = su_authn(l, "ops", "shared-1", jwt_plain, 6101, &line);
    if (su_all(l, "ops", "shared-1", 6101) != WD_DECISION_DENY)
        fail_msg("%s: a JWT login on ops's clientid took its superuser", what);
    want = d == WD_DECISION_ALLOW ? WD_DECISION_DENY : WD_DECISION_ALLOW;
    if (su_all(l, "ops", "shared-1", 6100) != want)
        fail_msg("%s: shared-1's first connection after a %s JWT login", what, wd_decision_str(d));

    /* the stores' superusers: Redis is_superuser, the JWT claim; not by their name */
    if (su_authn(l, "rootr", "r-1", "root-pw", 7000, &line) != WD_DECISION_ALLOW ||
        line != lines[SU_REDIS] || su_all(l, "rootr", "r-1", 7000) != WD_DECISION_ALLOW)
        fail_msg("%s: a Redis superuser is not one", what);
    su_authn(l, "rootr", "sensor-3", "wrong", 7001, &line);
    if (su_all(l, "rootr", "sensor-3", 7001) != WD_DECISION_DENY)
        fail_msg("%s: sensor-3 named like a Redis superuser got '#'", what);
    if (su_authn(l, "jsu", "j-2", jwt_su, 7002, &line) != WD_DECISION_ALLOW ||
        line != lines[SU_JWT] || su_all(l, "jsu", "j-2", 7002) != WD_DECISION_ALLOW)
        fail_msg("%s: a JWT with is_superuser is not a superuser", what);
    su_authn(l, "jsu", "sensor-4", "wrong", 7003, &line);
    if (su_all(l, "jsu", "sensor-4", 7003) != WD_DECISION_DENY)
        fail_msg("%s: sensor-4 named like a JWT superuser got '#'", what);

    wd_engine_local_free(l);
    wd_engine_free(e);
}

static bool next_permutation(int *a, int n)
{
    int i = n - 2;
    while (i >= 0 && a[i] >= a[i + 1])
        i--;
    if (i < 0)
        return false;
    int j = n - 1;
    while (a[j] <= a[i])
        j--;
    int t = a[i];
    a[i] = a[j];
    a[j] = t;
    for (int x = i + 1, y = n - 1; x < y; x++, y--) {
        t = a[x];
        a[x] = a[y];
        a[y] = t;
    }
    return true;
}

static void superuser_follows_the_authenticating_step_in_every_step_order(void **state)
{
    (void)state;
    redis_cmd("DEL mqtt_user:ops mqtt_user:jsu mqtt_user:sensor-1");
    redis_cmd("HSET mqtt_user:rootr password_hash root-pw is_superuser 1");
    char *jwt_plain = su_jwt("{\"sub\":\"ops\"}");
    char *jwt_su = su_jwt("{\"sub\":\"jsu\",\"is_superuser\":true}");
    int order[SU_NSTEPS] = {0, 1, 2, 3, 4};
    int n = 0;
    do {
        su_check_order(order, jwt_plain, jwt_su);
        n++;
    } while (next_permutation(order, SU_NSTEPS));
    assert_int_equal(n, 120);
    free(jwt_plain);
    free(jwt_su);
}

/* session_store local: a restarted warden (or another replica) has no session: ops is not
 * a superuser there until it authenticates again. */
static void no_session_no_superuser(void **state)
{
    (void)state;
    const int order[SU_NSTEPS] = {0, 1, 2, 3, 4};
    char pol[1024];
    unsigned lines[SU_NSTEPS], line;
    su_policy(order, pol, sizeof pol, lines);
    struct wd_engine *e = engine_with(pol, "jwt_secret=" SU_JWT_SECRET ";session_store=local");
    struct wd_engine_local *l = wd_engine_local_new(e);
    assert_int_equal(su_authn(l, "ops", "c-1", "ops-pw", 5000, &line), WD_DECISION_ALLOW);
    assert_int_equal(su_all(l, "ops", "c-1", 5000), WD_DECISION_ALLOW);
    wd_engine_local_free(l);
    wd_engine_free(e);
    e = engine_with(pol, "jwt_secret=" SU_JWT_SECRET ";session_store=local");
    l = wd_engine_local_new(e);
    assert_int_equal(su_all(l, "ops", "c-1", 5000), WD_DECISION_DENY);
    wd_engine_local_free(l);
    wd_engine_free(e);
}

/* A credential step whose condition compares a value the client does not have (no
 * certificate here): the step still runs and its refusal applies; its admission does not
 * (the chain goes on, and the token's superuser flag goes with the discarded answer). Before,
 * the step was skipped: a client that dropped its certificate reached `authn allow when`
 * with a forged token a client with another's certificate was refused for. */
static void an_unknown_step_condition_still_refuses_a_bad_credential(void **state)
{
    (void)state;
    const char *pol = "authn jwt when not cn = \"${username}\"\n"
                      "authn allow when clientid ~ \"sensor-[0-9]+\"\n"
                      "authn default deny\n"
                      "allow all \"#\" when superuser\n"
                      "authz default deny\n";
    struct wd_engine *e = engine_with(pol, "jwt_secret=" SU_JWT_SECRET ";session_store=local");
    struct wd_engine_local *l = wd_engine_local_new(e);
    unsigned line;
    /* a forged token, no certificate: refused by the jwt step (line 1) */
    assert_int_equal(su_authn(l, "ops", "sensor-1", "forged.token.here", 7000, &line),
                     WD_DECISION_DENY);
    assert_int_equal(line, 1);
    /* a valid superuser token, no certificate: the step's admission does not apply, the
     * next step admits, and the client is no superuser */
    char *tok = su_jwt("{\"sub\":\"ops\",\"is_superuser\":true}");
    assert_int_equal(su_authn(l, "ops", "sensor-2", tok, 7001, &line), WD_DECISION_ALLOW);
    assert_int_equal(line, 2);
    assert_int_equal(su_all(l, "ops", "sensor-2", 7001), WD_DECISION_DENY);
    /* not reached by another step: the default */
    assert_int_equal(su_authn(l, "ops", "x-1", tok, 7002, &line), WD_DECISION_DENY);
    assert_int_equal(line, 3);
    free(tok);
    wd_engine_local_free(l);
    wd_engine_free(e);
}

/* ---- shared sessions (session_store redis, the default with Redis) ---- */

static bool redis_exists(const char *key)
{
    redisContext *c = admin(g_srv);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "EXISTS %s", key);
    assert_non_null(r);
    bool yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    redisFree(c);
    return yes;
}

static void redis_set(const char *key, const char *val, size_t len)
{
    redisContext *c = admin(g_srv);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "SET %s %b", key, val, len);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(c);
}

/* ops (a static superuser) under clientid cid on a fresh engine ("a restarted warden"):
 * subscribe "#" from peer port */
static enum wd_decision fresh_su_all(const char *pol, const char *cid, uint32_t port)
{
    struct wd_engine *e = engine_with(pol, "jwt_secret=" SU_JWT_SECRET);
    struct wd_engine_local *l = wd_engine_local_new(e);
    enum wd_decision d = su_all(l, "ops", cid, port);
    wd_engine_local_free(l);
    wd_engine_free(e);
    return d;
}

static void fresh_disconnect(const char *pol, const char *cid, uint32_t port)
{
    struct wd_engine *e = engine_with(pol, "jwt_secret=" SU_JWT_SECRET);
    struct wd_engine_local *l = wd_engine_local_new(e);
    struct wd_client c = client("ops", cid, port);
    wd_engine_client_disconnected(l, &c);
    wd_engine_local_free(l);
    wd_engine_free(e);
}

/* The session authenticate wrote to Redis is found by a restarted warden; a disconnect
 * deletes it there only if it comes from the same connection. */
static void a_restarted_warden_reads_the_shared_session(void **state)
{
    (void)state;
    const int order[SU_NSTEPS] = {0, 1, 2, 3, 4};
    char pol[1024];
    unsigned lines[SU_NSTEPS], line;
    su_policy(order, pol, sizeof pol, lines);
    redis_cmd("DEL warden:session:sh-1");
    struct wd_engine *e = engine_with(pol, "jwt_secret=" SU_JWT_SECRET);
    struct wd_engine_local *l = wd_engine_local_new(e);
    assert_int_equal(su_authn(l, "ops", "sh-1", "ops-pw", 5000, &line), WD_DECISION_ALLOW);
    wd_engine_local_free(l);
    wd_engine_free(e);
    assert_true(redis_exists("warden:session:sh-1"));
    assert_int_equal(fresh_su_all(pol, "sh-1", 5000), WD_DECISION_ALLOW);
    assert_int_equal(fresh_su_all(pol, "sh-1", 5001), WD_DECISION_DENY); /* another connection */
    fresh_disconnect(pol, "sh-1", 5001);
    assert_true(redis_exists("warden:session:sh-1"));
    assert_int_equal(fresh_su_all(pol, "sh-1", 5000), WD_DECISION_ALLOW);
    redis_cmd("SCRIPT FLUSH"); /* the delete falls back from EVALSHA to EVAL */
    fresh_disconnect(pol, "sh-1", 5000);
    assert_false(redis_exists("warden:session:sh-1"));
    assert_int_equal(fresh_su_all(pol, "sh-1", 5000), WD_DECISION_DENY);
}

/* What is in Redis under a session key is used only when it is exactly a session warden
 * writes, for this connection. */
static void a_forged_or_foreign_shared_session_is_not_used(void **state)
{
    (void)state;
    const int order[SU_NSTEPS] = {0, 1, 2, 3, 4};
    char pol[1024];
    unsigned lines[SU_NSTEPS];
    su_policy(order, pol, sizeof pol, lines);
    char good[256];
    snprintf(good, sizeof good,
             "{\"v\":1,\"user\":\"ops\",\"host\":\"10.0.0.7\",\"port\":5000,\"src\":\"static\","
             "\"su\":true,\"end\":%lld,\"exp\":0}",
             (long long)(time(NULL) + 3600) * 1000);
    static const char *const bad[] = {
        "not json",
        "{\"v\":1,\"user\":\"ops\",\"host\":\"10.0.0.7\",\"port\":5000,\"src\":\"other\","
        "\"su\":true,\"end\":99999999999999,\"exp\":0}", /* superuser without a credential */
        "{\"v\":2,\"user\":\"ops\",\"host\":\"10.0.0.7\",\"port\":5000,\"src\":\"static\","
        "\"su\":true,\"end\":99999999999999,\"exp\":0}", /* unknown version */
        "{\"v\":1,\"user\":\"ops\",\"host\":\"10.0.0.7\",\"port\":5000,\"src\":\"static\","
        "\"su\":true,\"end\":99999999999999,\"exp\":0,\"admin\":true}", /* unknown field */
        "{\"v\":1,\"user\":\"ops\",\"host\":\"10.0.0.7\",\"port\":5000,\"src\":\"static\","
        "\"su\":true,\"end\":1000,\"exp\":0}", /* ended */
        "{\"v\":1,\"user\":\"ops\",\"host\":\"10.0.0.8\",\"port\":5000,\"src\":\"static\","
        "\"su\":true,\"end\":99999999999999,\"exp\":0}", /* another peer */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        redis_set("warden:session:fg-1", bad[i], strlen(bad[i]));
        if (fresh_su_all(pol, "fg-1", 5000) != WD_DECISION_DENY)
            fail_msg("record %zu was used: %s", i, bad[i]);
    }
    /* oversized: refused before it is parsed */
    size_t big = 300 * 1024;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    memcpy(huge, good, strlen(good));
    redis_set("warden:session:fg-1", huge, big);
    free(huge);
    assert_int_equal(fresh_su_all(pol, "fg-1", 5000), WD_DECISION_DENY);
    redis_cmd("DEL warden:session:fg-1");
    redis_cmd("HSET warden:session:fg-1 user ops"); /* the wrong type: a read error */
    assert_int_equal(fresh_su_all(pol, "fg-1", 5000), WD_DECISION_DENY);
    redis_cmd("DEL warden:session:fg-1");
    /* and the well-formed one is this connection's */
    redis_set("warden:session:fg-1", good, strlen(good));
    assert_int_equal(fresh_su_all(pol, "fg-1", 5000), WD_DECISION_ALLOW);
    redis_cmd("DEL warden:session:fg-1");
}

/* session_redis_prefix must not let a client id name a user record or an ACL. */
static void a_session_prefix_overlapping_a_key_template_is_refused(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/p.policy", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("authn redis\n", f);
    fclose(f);
    struct wd_config cfg;
    wd_config_defaults(&cfg);
    char *errors = NULL, *report = NULL;
    assert_int_equal(wd_config_set(&cfg, "policy", path, &errors), WD_OK);
    assert_int_equal(wd_config_set(&cfg, "redis_host", "127.0.0.1", &errors), WD_OK);
    assert_int_equal(wd_config_set(&cfg, "session_redis_prefix", "mqtt_", &errors), WD_OK);
    struct wd_engine *e = wd_engine_new(&cfg, &report);
    assert_null(e);
    assert_non_null(report);
    assert_non_null(strstr(report, "session_redis_prefix"));
    free(report);
    wd_config_cleanup(&cfg);
}

/* ---- time: the engine's clock is passed in (core/clock.h) ---- */

/* A clock the test moves by hand. Far from the real one: a component reading the real
 * clock instead of this one sees every token of these tests as long expired. Atomic: the
 * engine reads its clock on other threads too (the invalidation stream's, for one). */
struct test_clock {
    _Atomic int64_t mono_ms, unix_s;
};

static int64_t test_mono_ms(void *ctx)
{
    return ((struct test_clock *)ctx)->mono_ms;
}

static int64_t test_unix_s(void *ctx)
{
    return ((struct test_clock *)ctx)->unix_s;
}

static const char JWT_SU_POLICY[] = "authn jwt\n"
                                    "authn default deny\n"
                                    "allow all [\"#\", \"$SYS/#\"] when superuser\n"
                                    "authz default deny\n";

/* A verified token is cached (for up to cache_ttl, on the monotonic clock) and checked
 * against its exp again at each hit, on the wall clock: moving only the wall clock past exp
 * + jwt_leeway refuses it from the cache, and the session it made loses its rights. */
static void a_cached_token_is_refused_once_the_clock_passes_its_exp(void **state)
{
    (void)state;
    struct test_clock tc = {.mono_ms = 5000000, .unix_s = 1000000};
    struct wd_clock clock = {test_mono_ms, test_unix_s, &tc};
    struct wd_engine *e =
        fixture_engine_clock(JWT_SU_POLICY, "session_store=local;cache_ttl=1h",
                             "jwt_secret=" SU_JWT_SECRET ";jwt_leeway=10s", &clock);
    struct wd_engine_local *l = wd_engine_local_new(e);
    char *tok = su_jwt("{\"sub\":\"t\",\"is_superuser\":true,\"exp\":1000060}");
    unsigned line;

    uint64_t verified = wd_metrics_get(WD_M_JWT_VERIFIED);
    assert_int_equal(su_authn(l, "t", "t-1", tok, 5000, &line), WD_DECISION_ALLOW);
    assert_int_equal(wd_metrics_get(WD_M_JWT_VERIFIED) - verified, 1);
    assert_int_equal(su_all(l, "t", "t-1", 5000), WD_DECISION_ALLOW);

    /* the last second of exp + leeway: the client reconnects, allowed from the cache */
    tc.unix_s = 1000060 + 10 - 1;
    uint64_t hits = wd_metrics_get(WD_M_AUTHN_CACHE_HITS);
    assert_int_equal(su_authn(l, "t", "t-1", tok, 5001, &line), WD_DECISION_ALLOW);
    assert_int_equal(wd_metrics_get(WD_M_AUTHN_CACHE_HITS) - hits, 1);
    assert_int_equal(wd_metrics_get(WD_M_JWT_VERIFIED) - verified, 1);
    assert_int_equal(su_all(l, "t", "t-1", 5001), WD_DECISION_ALLOW);

    /* exp + leeway on the wall clock; the monotonic clock has not moved (the entry is
     * still in the cache): the session's rights end, the cached token is refused */
    tc.unix_s = 1000060 + 10;
    assert_int_equal(su_all(l, "t", "t-1", 5001), WD_DECISION_DENY);
    uint64_t expired = wd_metrics_get(WD_M_JWT_REFUSED_EXPIRED);
    assert_int_equal(su_authn(l, "t", "t-1", tok, 5002, &line), WD_DECISION_DENY);
    assert_int_equal(wd_metrics_get(WD_M_AUTHN_CACHE_HITS) - hits, 2);
    assert_int_equal(wd_metrics_get(WD_M_JWT_REFUSED_EXPIRED) - expired, 1);
    /* the entry was dropped: verified again, and refused by the verifier at that time */
    assert_int_equal(su_authn(l, "t", "t-1", tok, 5003, &line), WD_DECISION_DENY);
    assert_int_equal(wd_metrics_get(WD_M_AUTHN_CACHE_HITS) - hits, 2);
    assert_int_equal(wd_metrics_get(WD_M_JWT_REFUSED_EXPIRED) - expired, 2);
    assert_int_equal(wd_metrics_get(WD_M_JWT_VERIFIED) - verified, 1);

    /* a token not yet valid at the test's time (nbf ahead of it) is valid once it gets there */
    char *later = su_jwt("{\"sub\":\"u\",\"nbf\":1000500}");
    assert_int_equal(su_authn(l, "u", "u-1", later, 5004, &line), WD_DECISION_DENY);
    tc.unix_s = 1000500;
    assert_int_equal(su_authn(l, "u", "u-1", later, 5004, &line), WD_DECISION_ALLOW);
    free(later);
    free(tok);
    wd_engine_local_free(l);
    wd_engine_free(e);
}

/* A session ends at session_ttl on the monotonic clock, and a cached token no later than its
 * exp (the cache's TTL for it), without waiting. */
static void a_session_and_a_cached_token_end_on_the_engines_clock(void **state)
{
    (void)state;
    struct test_clock tc = {.mono_ms = 5000000, .unix_s = 2000000};
    struct wd_clock clock = {test_mono_ms, test_unix_s, &tc};
    struct wd_engine *e =
        fixture_engine_clock(JWT_SU_POLICY, "session_store=local;cache_ttl=1h;session_ttl=1m",
                             "jwt_secret=" SU_JWT_SECRET, &clock);
    struct wd_engine_local *l = wd_engine_local_new(e);
    char *tok = su_jwt("{\"sub\":\"s\",\"is_superuser\":true,\"exp\":2000100}");
    unsigned line;
    assert_int_equal(su_authn(l, "s", "s-1", tok, 5000, &line), WD_DECISION_ALLOW);
    assert_int_equal(su_all(l, "s", "s-1", 5000), WD_DECISION_ALLOW);

    tc.mono_ms += 60000 - 1;
    assert_int_equal(su_all(l, "s", "s-1", 5000), WD_DECISION_ALLOW);
    tc.mono_ms += 1; /* session_ttl: the session is gone, the token still valid */
    assert_int_equal(su_all(l, "s", "s-1", 5000), WD_DECISION_DENY);

    /* a new login: the cached token (the wall clock has not moved), a new session */
    uint64_t verified = wd_metrics_get(WD_M_JWT_VERIFIED);
    assert_int_equal(su_authn(l, "s", "s-1", tok, 5000, &line), WD_DECISION_ALLOW);
    assert_int_equal(wd_metrics_get(WD_M_JWT_VERIFIED) - verified, 0);
    assert_int_equal(su_all(l, "s", "s-1", 5000), WD_DECISION_ALLOW);
    /* the token's cache entry lives no longer than its exp (100 s after it was cached):
     * then it is verified again (the wall clock has not moved: still valid) */
    tc.mono_ms = 5000000 + 100000 - 1;
    assert_int_equal(su_authn(l, "s", "s-1", tok, 5001, &line), WD_DECISION_ALLOW);
    assert_int_equal(wd_metrics_get(WD_M_JWT_VERIFIED) - verified, 0);
    tc.mono_ms += 1;
    assert_int_equal(su_authn(l, "s", "s-1", tok, 5002, &line), WD_DECISION_ALLOW);
    assert_int_equal(wd_metrics_get(WD_M_JWT_VERIFIED) - verified, 1);
    free(tok);
    wd_engine_local_free(l);
    wd_engine_free(e);
}

/* ---- admin flush ---- */

static void flush_user_drops_a_cached_verdict_and_acl(void **state)
{
    (void)state;
    redis_cmd("HSET mqtt_user:bob password_hash old-pw");
    redis_cmd("DEL mqtt_acl:bob");
    redis_cmd("HSET mqtt_acl:bob a/1 publish");
    /* without invalidations: the cached answers stand until a flush */
    struct wd_engine *e = engine_with(POLICY, "redis_password_hash=plain;cache_invalidation=off");
    struct wd_engine_local *l = wd_engine_local_new(e);
    assert_int_equal(authn(l, "bob", "b1", "old-pw"), WD_DECISION_ALLOW);
    assert_int_equal(authz(l, "bob", "b1", "a/1"), WD_DECISION_ALLOW);
    assert_int_equal(authz(l, "bob", "b1", "a/2"), WD_DECISION_DENY);

    redis_cmd("HSET mqtt_user:bob password_hash new-pw");
    redis_cmd("HSET mqtt_acl:bob a/2 publish");
    /* cached: the old answers stand until the TTL or a flush */
    assert_int_equal(authn(l, "bob", "b1", "old-pw"), WD_DECISION_ALLOW);
    assert_int_equal(authz(l, "bob", "b1", "a/2"), WD_DECISION_DENY);
    assert_true(wd_engine_flush(e, "carol", 5) == 0);
    assert_true(wd_engine_flush(e, "bob", 3) >= 2);
    assert_int_equal(authn(l, "bob", "b1", "old-pw"), WD_DECISION_DENY);
    assert_int_equal(authn(l, "bob", "b1", "new-pw"), WD_DECISION_ALLOW);
    assert_int_equal(authz(l, "bob", "b1", "a/2"), WD_DECISION_ALLOW);
    wd_engine_local_free(l);
    wd_engine_free(e);
}

/* ---- cache_invalidation tracking (the default with Redis) ---- */

/* Subscribers to the invalidation channel (the stream is up when there is one). */
static long long pubsub_clients(void)
{
    redisContext *c = admin(g_srv);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "PUBSUB NUMSUB __redis__:invalidate");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    long long n = r->element[1]->integer;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* A warm cache: a write in Redis drops the verdict and the ACL, with no flush and no TTL. */
static void with_tracking_a_write_in_redis_reaches_a_warm_cache(void **state)
{
    (void)state;
    redis_cmd("HSET mqtt_user:dan password_hash old-pw");
    redis_cmd("DEL mqtt_acl:dan");
    redis_cmd("HSET mqtt_acl:dan a/1 publish");
    struct wd_engine *e = engine_with(POLICY, "redis_password_hash=plain;cache_ttl=1h");
    struct wd_engine_local *l = wd_engine_local_new(e); /* starts the stream */
    uint64_t end = mono_ms() + 10000;
    while (pubsub_clients() < 1 && mono_ms() < end)
        sleep_ms(2);
    assert_true(pubsub_clients() >= 1);
    /* the stream may be subscribed a moment before the cache is told: poll until warm */
    uint64_t before;
    do {
        assert_int_equal(authn(l, "dan", "d1", "old-pw"), WD_DECISION_ALLOW);
        assert_int_equal(authz(l, "dan", "d1", "a/1"), WD_DECISION_ALLOW);
        before = wd_metrics_get(WD_M_REDIS_LOOKUPS);
        assert_int_equal(authn(l, "dan", "d1", "old-pw"), WD_DECISION_ALLOW);
        assert_int_equal(authz(l, "dan", "d1", "a/1"), WD_DECISION_ALLOW);
    } while (wd_metrics_get(WD_M_REDIS_LOOKUPS) != before && mono_ms() < end);
    assert_int_equal(wd_metrics_get(WD_M_REDIS_LOOKUPS), before); /* warm */

    redis_cmd("HSET mqtt_user:dan password_hash new-pw");
    redis_cmd("HDEL mqtt_acl:dan a/1");
    redis_cmd("HSET mqtt_acl:dan a/2 publish");
    while ((authn(l, "dan", "d1", "old-pw") != WD_DECISION_DENY ||
            authz(l, "dan", "d1", "a/1") != WD_DECISION_DENY) &&
           mono_ms() < end)
        sleep_ms(1);
    assert_int_equal(authn(l, "dan", "d1", "old-pw"), WD_DECISION_DENY);
    assert_int_equal(authn(l, "dan", "d1", "new-pw"), WD_DECISION_ALLOW);
    assert_int_equal(authz(l, "dan", "d1", "a/1"), WD_DECISION_DENY);
    assert_int_equal(authz(l, "dan", "d1", "a/2"), WD_DECISION_ALLOW);
    wd_engine_local_free(l);
    wd_engine_free(e);
}

/* ---- configuration ---- */

static void a_policy_using_redis_without_redis_configured_is_refused(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/p.policy", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("authn jwt\nrules redis\n", f);
    fclose(f);
    struct wd_config cfg;
    wd_config_defaults(&cfg);
    char *errors = NULL, *report = NULL;
    assert_int_equal(wd_config_set(&cfg, "policy", path, &errors), WD_OK);
    struct wd_engine *e = wd_engine_new(&cfg, &report);
    assert_null(e);
    assert_non_null(report);
    assert_non_null(strstr(report, "redis_host"));
    assert_non_null(strstr(report, "jwt_secret"));
    free(report);
    wd_config_cleanup(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identical_concurrent_checks_ask_redis_once),
        cmocka_unit_test(a_static_bcrypt_user_storm_costs_one_bcrypt),
        cmocka_unit_test(redis_down_denies_or_goes_on_as_configured),
        cmocka_unit_test(redis_superuser_session_reaches_the_superuser_rule_until_disconnect),
        cmocka_unit_test(superuser_follows_the_authenticating_step_in_every_step_order),
        cmocka_unit_test(no_session_no_superuser),
        cmocka_unit_test(an_unknown_step_condition_still_refuses_a_bad_credential),
        cmocka_unit_test(a_restarted_warden_reads_the_shared_session),
        cmocka_unit_test(a_forged_or_foreign_shared_session_is_not_used),
        cmocka_unit_test(a_session_prefix_overlapping_a_key_template_is_refused),
        cmocka_unit_test(a_cached_token_is_refused_once_the_clock_passes_its_exp),
        cmocka_unit_test(a_session_and_a_cached_token_end_on_the_engines_clock),
        cmocka_unit_test(flush_user_drops_a_cached_verdict_and_acl),
        cmocka_unit_test(with_tracking_a_write_in_redis_reaches_a_warm_cache),
        cmocka_unit_test(a_policy_using_redis_without_redis_configured_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
