/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_acl.h: EMQX's Redis ACL layout, parsed into plain entries. Pure C, no I/O, no
 * hiredis: redis.c hands the (field, value) pairs of `HGETALL mqtt_acl:<user>` here, and
 * tests feed pairs directly.
 *
 * One hash per principal, field = topic filter, value = rule (emqx-auth-formats.md 2.3,
 * 4.4, 6.4). Every entry is an ALLOW: EMQX drops a JSON "permission" key. Values:
 *   publish | subscribe | all          exact, lowercase; all QoS, retain any
 *   {"action":..,"qos":..,"retain":..} a JSON object; other keys are ignored.
 *        action  required: publish|pub|subscribe|sub|all (exact, lowercase strings)
 *        qos     0|1|2, "0,2" (split on ',', no spaces), [0,"1"], null or absent = all
 *        retain  true|false, "true"|"false", 0|1, "0"|"1", "all", null or absent = any;
 *                ignored (not even validated) when the action is subscribe, as in EMQX
 * Anything else (invalid JSON, a JSON non-object, pub/sub/1/2/3 or uppercase as a plain
 * value, an unknown action, qos 3, ...) skips that entry; it is reported, never fatal.
 *
 * The topic (the field) is copied byte for byte, except that a leading "eq " (exactly
 * lowercase e, q, one space) is removed and sets `eq` (literal topic: no wildcards, no
 * placeholders). Topic syntax and placeholders are checked by the policy compiler; here
 * only an empty topic, a NUL byte and oversize are refused.
 *
 * Deliberate difference from EMQX: a JSON qos of [] (an empty list, which in EMQX gives a
 * rule that matches no QoS and so never matches) is skipped with a reason instead.
 */
#ifndef WD_STORE_REDIS_ACL_H
#define WD_STORE_REDIS_ACL_H

#include <stdbool.h>
#include <stddef.h>

#define WD_REDIS_ACL_MAX_ENTRIES 4096 /* pairs parsed per principal; the rest are reported */
#define WD_REDIS_ACL_TOPIC_MAX 65535  /* bytes, the MQTT topic limit (after "eq ") */
#define WD_REDIS_ACL_VALUE_MAX 4096   /* bytes of a JSON rule value */

#define WD_ACL_PUBLISH 1u
#define WD_ACL_SUBSCRIBE 2u
#define WD_ACL_QOS_ALL 7u /* bits 0, 1, 2 */

/* One allow rule. topic is a NUL-terminated heap string without the "eq " prefix. */
struct wd_acl_entry {
    char *topic;
    bool eq;           /* literal topic ("eq " prefix) */
    unsigned actions;  /* WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE */
    unsigned qos_mask; /* bit n = QoS n allowed; never 0 */
    int retain;        /* -1 any, 0 only non-retained, 1 only retained (publish) */
};

/* One hash field and its value, borrowed byte strings (may contain any byte). */
struct wd_redis_acl_pair {
    const char *field;
    size_t field_len;
    const char *value;
    size_t value_len;
};

/* Called once per skipped entry: `topic` is the raw field (field_len bytes, not
 * NUL-terminated, may be NULL with length 0 for the "entry limit" report), `reason` a
 * static English sentence fragment that never contains the value. May be NULL. */
typedef void (*wd_redis_acl_skip_fn)(void *ud, const char *topic, size_t topic_len,
                                     const char *reason);

/* Parses one pair into *out (zeroed on entry). Returns WD_OK, or WD_EINVAL with *reason
 * set to a static string when the entry is to be skipped (then *out holds nothing to
 * free). */
int wd_redis_acl_parse_entry(const struct wd_redis_acl_pair *p, struct wd_acl_entry *out,
                             const char **reason);

/* Parses n pairs in order. *out (heap array, free with wd_acl_entries_free) and *nout get
 * the valid entries, in input order; invalid ones go to skip(ud, ...). At most
 * WD_REDIS_ACL_MAX_ENTRIES pairs are parsed: if there are more, skip() is called once
 * with topic NULL and reason "entry limit reached". Returns WD_OK (also when every entry
 * was skipped: then *out is NULL and *nout 0); WD_EINVAL for NULL out-params. */
int wd_redis_acl_parse(const struct wd_redis_acl_pair *pairs, size_t n, struct wd_acl_entry **out,
                       size_t *nout, wd_redis_acl_skip_fn skip, void *ud);

/* Frees an entry array of n entries from wd_redis_acl_parse(). NULL is fine. */
void wd_acl_entries_free(struct wd_acl_entry *e, size_t n);

/* Frees what one entry owns (its topic) and zeroes it. */
void wd_acl_entry_cleanup(struct wd_acl_entry *e);

#endif
