/* SPDX-License-Identifier: Apache-2.0 */
/*
 * h2server.h: warden's gRPC server (`transport h2`, the only one): one acceptor thread,
 * `workers` threads each running its own event loop (loop.c) and owning its connections,
 * HTTP/2 and gRPC framing in h2.c. main.c starts it through transport.h.
 *
 * Accept distribution: the acceptor accepts (accept4, NONBLOCK | CLOEXEC) and hands each
 * connection to the worker with the fewest connections through that worker's loop post
 * queue (an eventfd wakes it). SO_REUSEPORT is not used: it hashes the 4-tuple, not load,
 * and EMQX opens only `pool_size` (8) long-lived connections per node, which hashing can put
 * 3 on one worker and none on another.
 *
 * Per peer: the acceptor counts connections per peer address (IPv4, or the whole IPv6
 * address) in a table shared with the workers under a mutex (taken once per accept and once
 * per close); one over `max_connections_per_peer` is accepted and closed at once, counted,
 * logged at most once a second, like one over `max_connections`.
 *
 * Slow peers: a connection must send the client preface and its SETTINGS within
 * `handshake_timeout` of its adoption, and each frame (a header block with its
 * CONTINUATIONs counts as one) within `header_timeout` of its first byte (wd_h2_deadline);
 * the connection's timer closes it otherwise.
 *
 * fd exhaustion (CVE-2023-4785 in gRPC core 1.51): on EMFILE/ENFILE the acceptor stops watching
 * the listener and re-arms it from a timer, so it neither spins nor dies; connections over
 * `max_connections` are accepted and closed at once, counted, logged at most once a second.
 * RLIMIT_NOFILE's soft limit is raised to the hard limit at start.
 *
 * TLS (tls_cert): the context is built once at start (tlsconn.c) and shared by the workers;
 * each connection does its TLS handshake on its worker, non-blocking, within a deadline and
 * under a per-worker cap of handshakes in progress, before its HTTP/2 session starts.
 */
#ifndef WD_H2SERVER_H
#define WD_H2SERVER_H

#include <stddef.h>

#include "core/config.h"
#include "engine/engine.h"

struct wd_h2server;

/* Binds, starts the acceptor and the workers. cfg and engine are borrowed and must outlive
 * the server. Returns WD_OK, WD_EBIND or WD_ETLS (TLS files unusable) with a message in
 * err. */
int wd_h2server_start(const struct wd_config *cfg, struct wd_engine *engine,
                      struct wd_h2server **out, char *err, size_t errcap);

/* The port actually bound (useful with port 0). */
int wd_h2server_port(const struct wd_h2server *s);

/* Graceful stop: stop accepting, GOAWAY (a shutdown notice, then the last stream id), let
 * in-flight calls finish for up to grace_ms, then close what remains; joins the threads.
 * Returns 1 if connections with calls in flight had to be closed at the end of the grace,
 * else 0. */
int wd_h2server_stop(struct wd_h2server *s, int grace_ms);

void wd_h2server_free(struct wd_h2server *s);

#endif
