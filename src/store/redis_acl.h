/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_acl.h: EMQX's Redis ACL layout, parsed into plain entries. Pure C, no I/O, no
 * hiredis: redis.c hands the (field, value) pairs of `HGETALL mqtt_acl:<user>` here, and
 * tests feed pairs directly. Only the Redis shape is here; a rule is read by the shared
 * EMQX rule parser (emqx_acl.h), which the JWT ACL claim uses too.
 *
 * One hash per principal, field = topic filter, value = rule (emqx-auth-formats.md 2.3,
 * 4.4, 6.4). Every entry is an ALLOW: EMQX drops a JSON "permission" key. Values:
 *   publish | subscribe | all          exact, lowercase; all QoS, retain any
 *   {"action":..,"qos":..,"retain":..} a JSON object (at most WD_REDIS_ACL_VALUE_MAX
 *        bytes, no duplicate keys), read as the rule object of emqx_acl.h with the field
 *        as its topic and "allow" as its permission (EMQX merges exactly these two in);
 *        its own "permission", "topic" and "topics" are ignored
 * Anything else (invalid JSON, a JSON non-object, pub/sub/1/2/3 or uppercase as a plain
 * value, an unknown action, qos 3, ...) skips that entry; it is reported, never fatal.
 *
 * The topic (the field) is read as emqx_acl.h says: a leading "eq " (exactly lowercase e,
 * q, one space) is removed and sets `eq`; an empty topic, a NUL byte and oversize are
 * refused. It is checked before the value, so its reason comes first.
 */
#ifndef WD_STORE_REDIS_ACL_H
#define WD_STORE_REDIS_ACL_H

#include <stdbool.h>
#include <stddef.h>

#include "store/emqx_acl.h"

#define WD_REDIS_ACL_MAX_ENTRIES 4096 /* pairs parsed per principal; the rest are reported */
#define WD_REDIS_ACL_TOPIC_MAX WD_ACL_TOPIC_MAX /* bytes, the MQTT topic limit (after "eq ") */
#define WD_REDIS_ACL_VALUE_MAX 4096             /* bytes of a JSON rule value */

/* Entries are struct wd_acl_entry (emqx_acl.h), `allow` always true. */

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

/* Free an entry array from wd_redis_acl_parse() with wd_acl_entries_free (emqx_acl.h). */

#endif
