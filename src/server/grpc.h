/* SPDX-License-Identifier: Apache-2.0 */
/*
 * grpc.h: the gRPC server (grpc.c is the only file that includes <grpc/...>).
 *
 * Serving model: `workers` threads, each owning one completion queue registered with the
 * server and keeping requests pre-posted for every method (many for the hot ones:
 * authenticate, authorize, message.publish), so a new call never waits for a slot. Every
 * HookProvider method is registered twice, under /emqx.exhook.v2.HookProvider/ and
 * /emqx.exhook.v3.HookProvider/, plus /grpc.health.v1.Health/Check. Calls to anything else
 * are answered UNIMPLEMENTED at once through a generic request.
 *
 * Each reply is one batch: initial metadata, exactly one uncompressed message (for OK),
 * status, and close-on-server.
 */
#ifndef WD_GRPC_H
#define WD_GRPC_H

#include <stddef.h>

#include "core/config.h"
#include "engine/engine.h"

struct wd_server;

/* Process-wide gRPC library set-up and tear-down (also routes gRPC's logs into ours). */
void wd_server_global_init(void);
void wd_server_global_cleanup(void);

/* Creates, binds and starts the server and its worker threads. cfg and engine are
 * borrowed and must outlive the server. Returns WD_OK, WD_EBIND or WD_ETLS with a
 * message in err. */
int wd_server_start(const struct wd_config *cfg, struct wd_engine *engine, struct wd_server **out,
                    char *err, size_t errcap);

/* The port actually bound (useful with port 0). */
int wd_server_port(const struct wd_server *s);

/* Graceful stop: stop accepting (GOAWAY), let in-flight calls finish for up to grace_ms,
 * then cancel what remains; joins the workers. Returns the number of calls cancelled
 * (0 or 1: whether cancellation was needed). */
int wd_server_stop(struct wd_server *s, int grace_ms);

void wd_server_free(struct wd_server *s);

#endif
