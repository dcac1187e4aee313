/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine_fixture.h: what the engine's unit tests share (test_backends.c, test_engine_async.c):
 * a real redis-server for the test group (redis_fixture.h), a scratch directory for the
 * policy file, Redis commands for the test's data, and an engine built from a policy text
 * and directives, exactly as a configuration file would set them (on the real clocks, or
 * on a test's). Header-only, one
 * including test file per binary.
 */
#ifndef WD_TEST_ENGINE_FIXTURE_H
#define WD_TEST_ENGINE_FIXTURE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "engine/engine.h"
#include "redis_fixture.h"

static struct srv *g_srv;
static char g_dir[64];

/* The group setup: a redis-server and /tmp/<name>_XXXXXX. */
static inline int fixture_setup(const char *name)
{
    atexit(kill_all_at_exit);
    wd_log_set_level(WD_LOG_ERROR);
    g_srv = srv_start(NULL);
    snprintf(g_dir, sizeof g_dir, "/tmp/%s_XXXXXX", name);
    return g_srv && mkdtemp(g_dir) ? 0 : -1;
}

static inline int fixture_teardown(void)
{
    srv_stop(g_srv);
    char p[128];
    snprintf(p, sizeof p, "%s/p.policy", g_dir);
    unlink(p);
    rmdir(g_dir);
    return 0;
}

/* One command on a fresh admin connection; an error reply fails the test. */
static inline void redis_cmd(const char *fmt, ...)
{
    redisContext *c = admin(g_srv);
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(c);
}

/* Applies directives "KEY=VALUE;KEY=VALUE" (NULL: none) to cfg; a refused one fails. */
static inline void fixture_set(struct wd_config *cfg, const char *list)
{
    char *errors = NULL;
    char *ex = strdup(list ? list : "");
    for (char *save = NULL, *kv = strtok_r(ex, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        assert_non_null(eq);
        *eq = '\0';
        if (wd_config_set(cfg, kv, eq + 1, &errors) != WD_OK)
            fail_msg("%s", errors);
    }
    free(ex);
}

/* An engine on this policy (written to g_dir/p.policy) with Redis at the fixture, then the
 * directives of base (the test file's own defaults), then those of extra; on the clocks of
 * clock (NULL: the real ones). */
static inline struct wd_engine *fixture_engine_clock(const char *policy, const char *base,
                                                     const char *extra,
                                                     const struct wd_clock *clock)
{
    char path[128], set[192];
    snprintf(path, sizeof path, "%s/p.policy", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(policy, f);
    fclose(f);
    struct wd_config cfg;
    wd_config_defaults(&cfg);
    snprintf(set, sizeof set, "policy=%s;redis_host=127.0.0.1;redis_port=%d", path, g_srv->port);
    fixture_set(&cfg, set);
    fixture_set(&cfg, base);
    fixture_set(&cfg, extra);
    char *report = NULL;
    struct wd_engine *e = wd_engine_new_clock(&cfg, clock, &report);
    if (!e)
        fail_msg("engine: %s", report ? report : "?");
    free(report);
    wd_config_cleanup(&cfg);
    return e;
}

static inline struct wd_engine *fixture_engine(const char *policy, const char *base,
                                               const char *extra)
{
    return fixture_engine_clock(policy, base, extra, NULL);
}

#endif
