/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport.h: the one serving entry point main.c calls: warden's own HTTP/2 transport
 * (h2server.h), the only one since gRPC core was removed in 0.2.0.
 */
#ifndef WD_TRANSPORT_H
#define WD_TRANSPORT_H

#include <stddef.h>

#include "core/config.h"
#include "engine/engine.h"

struct wd_transport;

/* Starts the server. cfg and engine are borrowed and must outlive it. Returns WD_OK, or
 * WD_EBIND / WD_ETLS / another error code with a message in err. */
int wd_transport_start(const struct wd_config *cfg, struct wd_engine *engine,
                       struct wd_transport **out, char *err, size_t errcap);
int wd_transport_port(const struct wd_transport *t);
/* Graceful stop within grace_ms; returns 1 if calls had to be cancelled, else 0. */
int wd_transport_stop(struct wd_transport *t, int grace_ms);
/* Frees the server. NULL is fine. */
void wd_transport_free(struct wd_transport *t);

#endif
