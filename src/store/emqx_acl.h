/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emqx_acl.h: EMQX's ACL rule, the one rule type (struct wd_acl_entry) and the one parser
 * that both stores carrying EMQX rules use: the Redis ACL (redis_acl.c, one hash field and
 * its value per rule) and the JWT ACL claim (jwt.c, the v1 object of topic lists and the v2
 * list of rule objects). Each of those keeps only its own shape and calls in here for a
 * rule. Pure C over jansson values, no I/O. Reference: emqx-auth-formats.md 4.4
 * (emqx_authz_rule_raw.erl); docs/internals/redis.md and docs/internals/jwt.md.
 *
 * A rule object (JSON), other keys ignored:
 *   permission  "allow" | "deny"                     (not read for Redis: every rule allows)
 *   action      "publish" | "pub" | "subscribe" | "sub" | "all"          required
 *   qos         0 | 1 | 2, "0,2" (split on ',', no spaces), a list of those ints or one-digit
 *               strings, null or absent = all. [] is refused (EMQX: a rule matching no QoS)
 *   retain      true | false, "true" | "false", 0 | 1, "0" | "1", "all", null or absent =
 *               any; not read (nor validated) for a subscribe rule, as in EMQX
 *   topic       a string: the rule's one topic; it wins over "topics", as in EMQX
 *   topics      a non-empty list of strings: one entry per topic, in order (EMQX accepts
 *               [], a rule that never matches; warden refuses it)
 * Keywords are exact and lowercase, compared with their length. Checks run in this order,
 * the first failure naming the reason: object, permission and action present, permission,
 * action, qos, retain, topics.
 *
 * A topic string: a leading "eq " (exactly: lowercase e, q, one space) is removed and sets
 * `eq` (literal: no wildcards, no placeholders). Refused: empty after the prefix, a NUL
 * byte, more than WD_ACL_TOPIC_MAX bytes after the prefix. Topic syntax and placeholders
 * are the policy compiler's to check.
 *
 * Reasons are static English fragments that never contain the input.
 */
#ifndef WD_STORE_EMQX_ACL_H
#define WD_STORE_EMQX_ACL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/request.h"

/* Action bits: the enum wd_action values, which are bits (the policy's WD_ACT_* too). */
#define WD_ACL_PUBLISH ((unsigned)WD_ACTION_PUBLISH)
#define WD_ACL_SUBSCRIBE ((unsigned)WD_ACTION_SUBSCRIBE)
#define WD_ACL_QOS_ALL 7u      /* bits 0, 1, 2 */
#define WD_ACL_TOPIC_MAX 65535 /* bytes after "eq ", the MQTT topic limit */

/* One rule on one topic. topic is a NUL-terminated heap string without the "eq " prefix. */
struct wd_acl_entry {
    char *topic;
    bool eq;           /* literal topic ("eq " prefix) */
    bool allow;        /* permission; always true for Redis */
    unsigned actions;  /* WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE, never 0 */
    unsigned qos_mask; /* bit n = QoS n allowed; never 0 */
    int retain;        /* -1 any, 0 only non-retained, 1 only retained (publish) */
};

struct json_t; /* jansson's, borrowed */

/* Flags for wd_emqx_acl_rule_fields. */
#define WD_EMQX_ACL_PERMISSION 1u /* read "permission" (required); without: the rule allows */

/* The topic string `s` (n bytes, any bytes) into e->topic (a heap copy without "eq ") and
 * e->eq. Returns WD_OK, or WD_EINVAL with *reason set (e->topic untouched). */
int wd_emqx_acl_topic(const char *s, size_t n, struct wd_acl_entry *e, const char **reason);

/* As wd_emqx_acl_topic for a JSON value, which must be a string ("topic is not a string"). */
int wd_emqx_acl_topic_json(const struct json_t *t, struct wd_acl_entry *e, const char **reason);

/* A rule object's permission (with WD_EMQX_ACL_PERMISSION), action, qos and retain into *e;
 * its topic is not read nor touched. Returns WD_OK, or WD_EINVAL with *reason set. */
int wd_emqx_acl_rule_fields(const struct json_t *obj, unsigned flags, struct wd_acl_entry *e,
                            const char **reason);

/* A whole rule object (permission required, topic or topics) into *out: one entry per
 * topic in order, at most `max` of them (heap array, free with wd_acl_entries_free; NULL
 * when *nout is 0). *ntopics gets the rule's topic count (every topic is checked, also
 * beyond `max`), so *ntopics > *nout says the caller's room ran out. Returns WD_OK, or
 * WD_EINVAL with *reason set and nothing kept (*out NULL, *nout and *ntopics 0). */
int wd_emqx_acl_rule_parse(const struct json_t *obj, size_t max, struct wd_acl_entry **out,
                           size_t *nout, size_t *ntopics, const char **reason);

/* Frees what one entry owns (its topic) and zeroes it. NULL is fine. */
void wd_acl_entry_cleanup(struct wd_acl_entry *e);

/* Frees an array of n entries and their topics. NULL is fine. */
void wd_acl_entries_free(struct wd_acl_entry *e, size_t n);

#endif
