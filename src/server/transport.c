/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport.c: dispatch to the configured server (see transport.h). gRPC's process-wide
 * initialization runs only when gRPC core serves.
 */
#include "server/transport.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/wd.h"
#include "server/grpc.h"
#include "server/h2server.h"

struct wd_transport {
    bool h2;
    struct wd_server *grpc;
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
        {"prepost", cfg->prepost != d.prepost},
    };
    wd_config_cleanup(&d);
    for (size_t i = 0; i < sizeof ds / sizeof *ds; i++)
        if (ds[i].set)
            wd_log_warn("server", "`%s` has no effect on transport h2 yet", ds[i].name);
}

int wd_transport_start(const struct wd_config *cfg, struct wd_engine *engine,
                       struct wd_transport **out, char *err, size_t errcap)
{
    *out = NULL;
    struct wd_transport *t = wd_calloc(1, sizeof *t);
    int rc;
    t->h2 = cfg->transport && strcmp(cfg->transport, "h2") == 0;
    if (t->h2) {
        warn_unused_on_h2(cfg);
        rc = wd_h2server_start(cfg, engine, &t->own, err, errcap);
    } else {
        wd_server_global_init();
        rc = wd_server_start(cfg, engine, &t->grpc, err, errcap);
        if (rc != WD_OK)
            wd_server_global_cleanup();
    }
    if (rc != WD_OK) {
        free(t);
        return rc;
    }
    *out = t;
    return WD_OK;
}

int wd_transport_port(const struct wd_transport *t)
{
    return t->h2 ? wd_h2server_port(t->own) : wd_server_port(t->grpc);
}

int wd_transport_stop(struct wd_transport *t, int grace_ms)
{
    return t->h2 ? wd_h2server_stop(t->own, grace_ms) : wd_server_stop(t->grpc, grace_ms);
}

void wd_transport_free(struct wd_transport *t)
{
    if (!t)
        return;
    if (t->h2) {
        wd_h2server_free(t->own);
    } else {
        wd_server_free(t->grpc);
        wd_server_global_cleanup();
    }
    free(t);
}
