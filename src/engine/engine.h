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
#include "core/wd.h"

/* Who is asking: the ExHook ClientInfo, as strings borrowed from the request. Empty
 * strings arrive as "" (EMQX sends "" for an undefined username); no field is NULL. */
struct wd_client {
    const char *node;
    const char *clientid;
    const char *username; /* "" when the client sent none: never the text "undefined" */
    const char *peerhost;
    uint32_t peerport;
    uint32_t sockport;
    const char *protocol;
    const char *mountpoint;
    const char *cn;
    const char *dn;
    bool anonymous;
    bool is_superuser;
};

struct wd_authn_req {
    struct wd_client client;
    const char *password; /* "" when none; may hold any bytes */
    size_t password_len;
    bool emqx_result; /* EMQX's accumulated verdict before warden (normally false) */
};

enum wd_action {
    WD_ACTION_PUBLISH = 1,
    WD_ACTION_SUBSCRIBE = 2,
};

struct wd_authz_req {
    struct wd_client client;
    enum wd_action action;
    const char *topic; /* topic name (publish) or filter (subscribe); share prefix stripped */
    size_t topic_len;
    int qos;    /* -1: unknown (EMQX does not send it through ExHook) */
    int retain; /* -1: unknown */
    bool emqx_result;
};

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
