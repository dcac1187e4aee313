/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hook.h: the ExHook HookProvider handlers, the only place that knows protobuf-c types.
 *
 * h2.c hands each call's request bytes to wd_hook_handle() together with the method
 * index; the handler decodes the request, validates it (every string field must be valid
 * UTF-8 without NUL bytes, or the request is refused), turns authenticate and authorize
 * requests into the engine's request structs, maps the engine's decision to a
 * ValuedResponse and serializes the reply. No gRPC type is seen here.
 *
 * Decision to wire mapping (docs/exhook.md):
 *   ALLOW   -> STOP_AND_RETURN, bool_result = true
 *   DENY    -> STOP_AND_RETURN, bool_result = false (present on the wire)
 *   NOMATCH -> nomatch_reply continue: CONTINUE, bool_result = request.result
 *              nomatch_reply ignore:   IGNORE, no value
 *
 * Threading: one struct wd_hook_worker per server thread (it owns a decode arena and the
 * reply buffer); the shared environment (config, engine) is read-only.
 */
#ifndef WD_HOOK_H
#define WD_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "engine/engine.h"

/* The two service names warden serves with the same handlers. */
#define WD_HOOK_NSERVICES 2
extern const char *const wd_hook_services[WD_HOOK_NSERVICES]; /* v2, v3 */

/* Number of HookProvider methods (21) and their names, in proto order. */
size_t wd_hook_nmethods(void);
const char *wd_hook_method_name(size_t method);
/* Methods that carry the per-message load (authenticate, authorize, message.publish):
 * the server keeps more requests pre-posted for them. */
bool wd_hook_method_is_hot(size_t method);

enum wd_hook_status {
    WD_HOOK_OK = 0,
    WD_HOOK_INVALID_ARGUMENT,
    WD_HOOK_NOT_FOUND,
    WD_HOOK_INTERNAL,
    WD_HOOK_PENDING, /* the call waits (wd_hook_handle_w only): no reply yet */
};

struct wd_hook_env {
    const struct wd_config *cfg;
    struct wd_engine *engine;
};

struct wd_hook_worker;

/* A worker whose calls block on Redis and slow hashes (tools, tests). */
struct wd_hook_worker *wd_hook_worker_new(const struct wd_hook_env *env);
/* A worker on the event loop ev (engine.h wd_engine_local_new_on): its calls through
 * wd_hook_handle_w never block. */
struct wd_hook_worker *wd_hook_worker_new_on(const struct wd_hook_env *env,
                                             const struct wd_evops *ev);
/* Free only when wd_hook_worker_waiting() is 0 (see wd_engine_local_free). */
void wd_hook_worker_free(struct wd_hook_worker *w);
/* Completions still due to this worker's loop (wd_engine_local_waiting). */
unsigned wd_hook_worker_waiting(const struct wd_hook_worker *w);

/* Handles one HookProvider call. `service` is 0 for v2, 1 for v3 (the handlers are the
 * same; it is used for logs and counters). On WD_HOOK_OK, *out and *outlen hold the
 * serialized reply, valid until the next call on this worker. Otherwise *detail is a
 * static message for grpc-message. */
enum wd_hook_status wd_hook_handle(struct wd_hook_worker *w, int service, size_t method,
                                   const uint8_t *in, size_t inlen, const uint8_t **out,
                                   size_t *outlen, const char **detail);

/* The same for a call that may wait (core/evops.h struct wd_waiter): WD_HOOK_PENDING
 * means no reply yet; waiter->resume runs later on the loop and the caller calls again with
 * the same bytes and waiter. The caller ends the call with wd_engine_waiter_end(waiter) once
 * it is answered or abandoned. */
enum wd_hook_status wd_hook_handle_w(struct wd_hook_worker *w, int service, size_t method,
                                     const uint8_t *in, size_t inlen, struct wd_waiter *waiter,
                                     const uint8_t **out, size_t *outlen, const char **detail);

/* grpc.health.v1.Health/Check. `serving` is false while shutting down. */
enum wd_hook_status wd_hook_health(struct wd_hook_worker *w, bool serving, const uint8_t *in,
                                   size_t inlen, const uint8_t **out, size_t *outlen,
                                   const char **detail);

#endif
