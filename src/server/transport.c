/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport.c: see transport.h. struct wd_transport wraps the h2 server: one code path.
 */
#include "server/transport.h"

#include <stdlib.h>

#include "core/wd.h"
#include "server/h2server.h"

/* the one transport; the name stays so that main.c does not change with it */
struct wd_transport {
    struct wd_h2server *own;
};

int wd_transport_start(const struct wd_config *cfg, struct wd_engine *engine,
                       struct wd_transport **out, char *err, size_t errcap)
{
    *out = NULL;
    struct wd_transport *t = wd_calloc(1, sizeof *t);
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
