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
 *
 * Deny rules use a wider relation for subscriptions: a rule filter R *overlaps* a
 * subscription filter S when some topic name matches both, i.e. when S can receive a
 * topic R denies (`secrets/#` overlaps `#` and `+/db-password`). Coverage is the right
 * test for allowing (everything S receives must be allowed), overlap for denying
 * (nothing S receives may be denied). For a topic name, overlap is plain matching,
 * like covers. Level by level:
 *
 *   rule level   request level   overlaps?
 *   literal L    literal M       L == M
 *   literal L    +               yes, unless L starts with '$' at the first level
 *   +            literal or +    yes, unless the literal starts with '$' at the first level
 *   #  (either side)             yes, the rest (including none: a/# overlaps a, a overlaps
 *                                a/#), unless the other first level starts with '$'
 *   placeholder  literal         as for covers (the rendering must equal it)
 *   placeholder  + or #          yes, whatever the client's value, even none: a deny rule
 *                                fails closed (a subscription there could receive the
 *                                rendered topic)
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
/* Checks a request's topic as MQTT does, with no limit on the number of levels (a broker may
 * allow more than a rule can have): non-empty, at most WD_TOPIC_MAX_LEN bytes, no NUL; a
 * filter (subscribe) may hold `+` and `#` as whole levels, `#` last; a name (publish) holds
 * neither character. */
bool wd_topic_request_valid(const char *t, size_t len, bool filter);

/* Splits s into levels (pointers into s, lengths). Returns the level count, or -1 if
 * there are more than `max` levels. An empty string has one empty level. */
int wd_topic_split(const char *s, size_t len, const char **lv, size_t *lvlen, int max);

/* A rule filter split into levels. A placeholder level (`${username}`) is opaque here: the
 * policy layer defines struct wd_tmpl and decides, through a callback, whether a request
 * level equals its rendering. */
struct wd_tmpl;

enum wd_level_kind {
    WD_LV_LITERAL,
    WD_LV_PLUS,
    WD_LV_HASH,
    WD_LV_TMPL,
};

struct wd_level {
    enum wd_level_kind kind;
    const char *s;
    size_t len;
    const struct wd_tmpl *t; /* WD_LV_TMPL */
};

/* Does the placeholder level t, rendered for the request (ctx), equal this level? */
typedef bool (*wd_topic_tmpl_fn)(const struct wd_tmpl *t, const char *level, size_t len,
                                 const void *ctx);

/* The covers relation (see above) for a rule given as levels. A placeholder level covers
 * only a literal request level that `fn` says equals its rendering, and never a first
 * level starting with '$'. fn may be NULL when the rule has no placeholder levels. */
bool wd_topic_covers_levels(const struct wd_level *lv, int nlv, const char *req, size_t qlen,
                            wd_topic_tmpl_fn fn, const void *ctx);

/* The same for a rule filter given as text (no placeholders). Both are assumed valid
 * filters. */
bool wd_topic_covers(const char *rule, size_t rlen, const char *req, size_t qlen);

/* The overlap relation (see above) for a rule given as levels: can the request filter
 * receive a topic the rule matches? Placeholder levels call fn as for covers, only
 * against literal request levels. fn may be NULL when the rule has no placeholders. */
bool wd_topic_overlaps_levels(const struct wd_level *lv, int nlv, const char *req, size_t qlen,
                              wd_topic_tmpl_fn fn, const void *ctx);

/* The same for a rule filter given as text (no placeholders). Both are assumed valid
 * filters; the relation is symmetric for them. */
bool wd_topic_overlaps(const char *rule, size_t rlen, const char *req, size_t qlen);

#endif
