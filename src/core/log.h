/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h: leveled logging, one line per event, to stderr.
 *
 * Every event is formatted into one buffer and written with a single write(2), so lines
 * from different threads never interleave. Control characters anywhere in the message are
 * escaped as \xNN before writing: a username holding "\n" cannot forge a second log line.
 * Callers never pass passwords, tokens or other secrets (CONVENTIONS: never logged).
 */
#ifndef WD_LOG_H
#define WD_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum wd_log_level {
    WD_LOG_ERROR = 0,
    WD_LOG_WARN,
    WD_LOG_INFO,
    WD_LOG_DEBUG,
};

void wd_log_set_level(enum wd_log_level level);
enum wd_log_level wd_log_get_level(void);
bool wd_log_enabled(enum wd_log_level level);

/* Parses "error", "warn", "info" or "debug". Returns WD_OK or WD_EINVAL. */
int wd_log_level_parse(const char *s, enum wd_log_level *out);
const char *wd_log_level_str(enum wd_log_level level);

/* Redirects output (tests); fd 2 by default. */
void wd_log_set_fd(int fd);

void wd_log(enum wd_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define wd_log_error(mod, ...) wd_log(WD_LOG_ERROR, mod, __VA_ARGS__)
#define wd_log_warn(mod, ...) wd_log(WD_LOG_WARN, mod, __VA_ARGS__)
#define wd_log_info(mod, ...) wd_log(WD_LOG_INFO, mod, __VA_ARGS__)
#define wd_log_debug(mod, ...)                                                                     \
    do {                                                                                           \
        if (wd_log_enabled(WD_LOG_DEBUG))                                                          \
            wd_log(WD_LOG_DEBUG, mod, __VA_ARGS__);                                                \
    } while (0)

/* A repeated failure logged once per interval, not once per occurrence. Zero-initialise;
 * one per call site; not thread-safe (one thread's loop). */
struct wd_log_ratelimit {
    long long next_ms;        /* the earliest time the next line may be written */
    unsigned long suppressed; /* occurrences not logged since the last line */
    bool started;
};

/* Whether to log an occurrence at now_ms (a monotonic clock, passed in): true for the first
 * one and then at most once per interval_ms, with *suppressed set to the occurrences skipped
 * since the last line (to say so in it); false otherwise (counted). */
bool wd_log_ratelimit_allow(struct wd_log_ratelimit *r, long long now_ms, long long interval_ms,
                            unsigned long *suppressed);

/* Escapes untrusted bytes (len of them) into out (capacity cap, always NUL-terminated) as a
 * double-quoted string: printable ASCII as is, '"' and '\' escaped, everything else \xNN;
 * truncated with "..." when it does not fit. Returns out. */
const char *wd_log_quote(char *out, size_t cap, const char *s, size_t len);

/* Formats one log line into buf (for tests); returns its length. */
size_t wd_log__format(char *buf, size_t cap, enum wd_log_level level, const char *module,
                      const char *msg);

#endif
