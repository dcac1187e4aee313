/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topic.h: MQTT topic names and filters, and the one relation warden authorizes with.
 *
 * A request's topic T (a PUBLISH topic name, or a SUBSCRIBE filter) is allowed by a rule
 * filter R only if R *covers* T: every topic name T can denote matches R. For a topic
 * name that is ordinary MQTT matching; for a subscription filter it is stricter than
 * EMQX's, which lets rule `a/+` allow a subscription to `a/#` (that subscription also
 * receives `a/x/y`, which `a/+` does not allow). Here:
 *
 *   rule level   request level   covered?
 *   literal L    literal L       yes
 *   literal L    + or #          no (the request reaches more than L)
 *   +            literal or +    yes
 *   +            #               no (# spans several levels)
 *   #            anything, and all remaining levels (including none: a/# covers a)
 *
 * and, as in MQTT, a first-level `+` or `#` in the rule never covers a request whose
 * first level starts with '$' (so `#` does not reach `$SYS/...`).
 */
#ifndef WD_TOPIC_H
#define WD_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define WD_TOPIC_MAX_LEN 65535
#define WD_TOPIC_MAX_LEVELS 128

/* Checks a topic filter (wildcards allowed in whole levels, '#' last). */
bool wd_topic_filter_valid(const char *f, size_t len);
/* Checks a topic name (no wildcards). */
bool wd_topic_name_valid(const char *t, size_t len);

/* Splits s into levels (pointers into s, lengths). Returns the level count, or -1 if
 * there are more than `max` levels. An empty string has one empty level. */
int wd_topic_split(const char *s, size_t len, const char **lv, size_t *lvlen, int max);

/* Does rule filter `rule` cover request topic/filter `req` (see above)? Both are
 * assumed valid filters. */
bool wd_topic_covers(const char *rule, size_t rlen, const char *req, size_t qlen);

#endif
