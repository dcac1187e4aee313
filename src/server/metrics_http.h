/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics_http.h: the Prometheus endpoint (`metrics_listen HOST:PORT`, off by default), on
 * libmicrohttpd. Three paths, GET only:
 *
 *   /metrics   the text exposition: core/metrics.h's counters and histograms, the engine's
 *              snapshot (ops->collect), warden_build_info, the h2 connections open, and the
 *              process_* samples (fds, RSS, CPU, start time) from /proc
 *   /healthz   200 "ok" while the process answers HTTP (liveness)
 *   /readyz    200 when a policy is loaded and each store the policy needs answers
 *              (ops->ready), else 503; one line per check in the body
 *
 * MHD runs its own thread (MHD_USE_INTERNAL_POLLING_THREAD, epoll): nothing here runs on a
 * worker's loop, and a /readyz that waits for Redis delays only other scrapes (by at most
 * the Redis timeouts). It is an attack surface like the gRPC port: WD_METRICS_HTTP_CONNS
 * connections at once, WD_METRICS_HTTP_PER_IP per client address (so one host cannot hold
 * them all), a connection idle for WD_METRICS_HTTP_TIMEOUT_S is closed, request headers are
 * bounded by WD_METRICS_HTTP_MEMORY, and any body is refused.
 */
#ifndef WD_SERVER_METRICS_HTTP_H
#define WD_SERVER_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/metrics.h"

#define WD_METRICS_HTTP_CONNS 32
#define WD_METRICS_HTTP_PER_IP 8
#define WD_METRICS_HTTP_TIMEOUT_S 5
#define WD_METRICS_HTTP_MEMORY (16u << 10)

struct wd_metrics_http_ops {
    /* samples owned by others (the engine's snapshot); returns how many (<= cap) */
    size_t (*collect)(void *ctx, struct wd_metrics_sample *s, size_t cap);
    /* readiness: one line per check into out; false when not ready */
    bool (*ready)(void *ctx, struct wd_buf *out);
    void *ctx;
};

struct wd_metrics_http;

/* Listens on `listen` (HOST:PORT, [V6]:PORT; a numeric address or a name) and serves. ops
 * is copied. WD_OK with *out set, or an error with err set. */
int wd_metrics_http_start(const char *listen, const struct wd_metrics_http_ops *ops,
                          struct wd_metrics_http **out, char *err, size_t errcap);

/* From now on /readyz answers 503 "stopping" (the server is draining). */
void wd_metrics_http_stopping(struct wd_metrics_http *m);

/* Stops serving and frees. NULL is fine. */
void wd_metrics_http_stop(struct wd_metrics_http *m);

#endif
