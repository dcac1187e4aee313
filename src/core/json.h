/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json.h: writing JSON strings from bytes that may come from anyone (client ids, topics,
 * usernames): the decision log's writer. Every byte that JSON or a log reader could
 * misread is escaped: the quote and backslash, every control character (U+0000-U+001F and
 * DEL, as \uXXXX or the short forms), and U+2028/U+2029 (line separators to JavaScript).
 * Input that is not UTF-8 cannot reach the decision log (requests are validated), but a
 * byte that does not start a valid sequence is written as U+FFFD rather than copied, so
 * the output is valid UTF-8 whatever the input.
 */
#ifndef WD_JSON_H
#define WD_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* Appends s (n bytes) as a JSON string, quotes included. At most max input bytes are
 * written (0: no limit), cut at a character boundary; returns true if s was cut. */
bool wd_json_str(struct wd_buf *b, const char *s, size_t n, size_t max);

#endif
