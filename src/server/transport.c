/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport.c: see transport.h. A struct wd_transport is the h2 server itself: there is one
 * code path, and this file adds only the start-up warnings.
 */
#include "server/transport.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/wd.h"
#include "server/h2server.h"

/* the one transport; the name stays so that main.c does not change with it */
struct wd_transport {
    struct wd_h2server *own;
};

/* Directives transport h2 does not honour yet (docs/configuration.md): a value other than
 * the default is said at start, never ignored silently. */
static void warn_unused_on_h2(const struct wd_config *cfg)
{
    struct wd_config d;
    wd_config_defaults(&d);
    const struct {
        const char *name;
        bool set;
    } ds[] = {
        {"keepalive_time", cfg->keepalive_time_ms != d.keepalive_time_ms},
        {"keepalive_timeout", cfg->keepalive_timeout_ms != d.keepalive_timeout_ms},
        {"min_ping_interval", cfg->min_ping_interval_ms != d.min_ping_interval_ms},
        {"max_connection_idle", cfg->max_connection_idle_ms != d.max_connection_idle_ms},
        {"max_connection_age", cfg->max_connection_age_ms != d.max_connection_age_ms},
        {"max_connection_age_grace",
         cfg->max_connection_age_grace_ms != d.max_connection_age_grace_ms},
    };
    wd_config_cleanup(&d);
    for (size_t i = 0; i < sizeof ds / sizeof *ds; i++)
        if (ds[i].set)
            wd_log_warn("server",
                        "`%s` has no effect on transport h2 yet (it answers pings and closes a "
                        "connection after 300 s without a byte from the peer)",
                        ds[i].name);
}

int wd_transport_start(const struct wd_config *cfg, struct wd_engine *engine,
                       struct wd_transport **out, char *err, size_t errcap)
{
    *out = NULL;
    struct wd_transport *t = wd_calloc(1, sizeof *t);
    warn_unused_on_h2(cfg);
    int rc = wd_h2server_start(cfg, engine, &t->own, err, errcap);
    if (rc != WD_OK) {
        free(t);
        return rc;
    }
    *out = t;
    return WD_OK;
}

int wd_transport_port(const struct wd_transport *t)
{
    return wd_h2server_port(t->own);
}

int wd_transport_stop(struct wd_transport *t, int grace_ms)
{
    return wd_h2server_stop(t->own, grace_ms);
}

void wd_transport_free(struct wd_transport *t)
{
    if (!t)
        return;
    wd_h2server_free(t->own);
    free(t);
}
