/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine.h: the decision seam. The server unpacks ExHook requests into these structs
 * (no protobuf or gRPC type crosses this line) and the engine answers allow / deny /
 * nomatch with a reason. Today the engine answers from configuration: a static user table
 * and a default decision per check. The policy compiler plugs in behind the same two
 * calls; the stores (Redis, JWT, cache) sit behind the engine.
 *
 * Error policy, decided here and only here: any internal error on the auth path is a DENY
 * (fail closed), with the error as the reason.
 *
 * Thread safety: an engine is immutable after wd_engine_new; any number of threads may
 * call authenticate/authorize concurrently. Request structs are borrowed for the call.
 */
#ifndef WD_ENGINE_H
#define WD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/request.h"
#include "core/wd.h"

/* Why a decision was made: static text, safe to log, never a secret. */
struct wd_verdict {
    enum wd_decision decision;
    const char *reason;
};

struct wd_engine;

/* Builds an engine from configuration. On error returns NULL and sets *errors (malloc'd,
 * "file:line: message" lines). */
struct wd_engine *wd_engine_new(const struct wd_config *cfg, char **errors);
void wd_engine_free(struct wd_engine *e);

/* Both return WD_OK with *out set; on an internal error they still set *out (DENY) and
 * return the error code for the caller's logs. */
int wd_engine_authenticate(const struct wd_engine *e, const struct wd_authn_req *req,
                           struct wd_verdict *out);
int wd_engine_authorize(const struct wd_engine *e, const struct wd_authz_req *req,
                        struct wd_verdict *out);

#endif
