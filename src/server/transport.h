/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport.h: the one serving entry point main.c calls. It starts the gRPC-core server
 * (grpc.h) or warden's own HTTP/2 transport (h2server.h) as the configuration's
 * `transport` directive says (transitional: grpc-core leaves in a later stage, and this
 * facade with it).
 */
#ifndef WD_TRANSPORT_H
#define WD_TRANSPORT_H

#include <stddef.h>

#include "core/config.h"
#include "engine/engine.h"

struct wd_transport;

/* Starts the configured server. Same contract as wd_server_start (grpc.h): cfg and engine
 * are borrowed and must outlive it; WD_OK, or an error code with a message in err. */
int wd_transport_start(const struct wd_config *cfg, struct wd_engine *engine,
                       struct wd_transport **out, char *err, size_t errcap);
int wd_transport_port(const struct wd_transport *t);
/* Graceful stop within grace_ms; returns 1 if calls had to be cancelled, else 0. */
int wd_transport_stop(struct wd_transport *t, int grace_ms);
/* Frees the server (and, for grpc-core, releases the gRPC library). NULL is fine. */
void wd_transport_free(struct wd_transport *t);

#endif
