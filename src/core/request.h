/* SPDX-License-Identifier: Apache-2.0 */
/*
 * request.h: warden's own view of an authentication or authorization request. The
 * server fills these from ExHook messages; the engine and the policy read them. Plain
 * data, borrowed for one call: strings point into the decoded request.
 */
#ifndef WD_REQUEST_H
#define WD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Who is asking: the ExHook ClientInfo, as strings borrowed from the request. Empty
 * strings arrive as "" (EMQX sends "" for an undefined username); no string field is
 * NULL. Zero-initialize it (designated initializers, memset): a zero `claim` means the
 * client has no claims. */
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
    /* JWT claims of this client's session, for ${claim.NAME}: returns the claim as text or
     * NULL (absent). NULL function: no claims. */
    const char *(*claim)(const void *ctx, const char *name, size_t name_len);
    const void *claim_ctx;
};

struct wd_authn_req {
    struct wd_client client;
    const char *password; /* "" when none; may hold any bytes */
    size_t password_len;
    bool emqx_result; /* EMQX's accumulated verdict before warden (normally false) */
};

/* The values are bits: a set of actions (a rule's) is their OR, as the policy's WD_ACT_* and
 * the stores' WD_ACL_* are. */
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

#endif
