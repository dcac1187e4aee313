/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.c: see log.h. Line format:
 *
 *   2026-11-24T10:00:00.123Z INFO  server: listening on 127.0.0.1:9000 (h2c)
 *
 * UTC timestamps with milliseconds, so lines from several replicas sort together.
 */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/wd.h"

static atomic_int g_level = WD_LOG_INFO;
static atomic_int g_fd = 2;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

void wd_log_set_level(enum wd_log_level level)
{
    atomic_store(&g_level, (int)level);
}

enum wd_log_level wd_log_get_level(void)
{
    return (enum wd_log_level)atomic_load(&g_level);
}

bool wd_log_enabled(enum wd_log_level level)
{
    return (int)level <= atomic_load_explicit(&g_level, memory_order_relaxed);
}

int wd_log_level_parse(const char *s, enum wd_log_level *out)
{
    for (size_t i = 0; i < WD_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum wd_log_level)i;
            return WD_OK;
        }
    }
    return WD_EINVAL;
}

const char *wd_log_level_str(enum wd_log_level level)
{
    return (unsigned)level < WD_ARRAY_LEN(level_names) ? level_names[level] : "?";
}

void wd_log_set_fd(int fd)
{
    atomic_store(&g_fd, fd);
}

const char *wd_log_quote(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap < 8) {
        if (cap)
            out[0] = '\0';
        return out;
    }
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[4];
        size_t n;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c >= 0x7f) {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            n = 4;
        } else {
            esc[0] = (char)c;
            n = 1;
        }
        /* keep room for the closing quote, "..." and NUL */
        if (o + n + 5 > cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

size_t wd_log__format(char *buf, size_t cap, enum wd_log_level level, const char *module,
                      const char *msg)
{
    static const char hex[] = "0123456789abcdef";
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                 level_tags[(unsigned)level < WD_ARRAY_LEN(level_tags) ? level : 0], module);
    size_t o = (n > 0 && (size_t)n < cap) ? (size_t)n : 0;
    /* the message: control characters escaped so one event is always one line */
    for (const unsigned char *p = (const unsigned char *)msg; *p && o + 5 < cap; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[*p >> 4];
            buf[o++] = hex[*p & 15];
        } else {
            buf[o++] = (char)*p;
        }
    }
    buf[o++] = '\n';
    buf[o] = '\0';
    return o;
}

void wd_log(enum wd_log_level level, const char *module, const char *fmt, ...)
{
    if (!wd_log_enabled(level))
        return;
    int saved = errno;
    char msg[2048], line[4096 + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = wd_log__format(line, sizeof line, level, module, msg);
    int fd = atomic_load(&g_fd);
    const char *p = line;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        len -= (size_t)w;
    }
    errno = saved;
}

bool wd_log_ratelimit_allow(struct wd_log_ratelimit *r, long long now_ms, long long interval_ms,
                            unsigned long *suppressed)
{
    *suppressed = 0;
    if (r->started && now_ms < r->next_ms) {
        r->suppressed++;
        return false;
    }
    *suppressed = r->suppressed;
    r->suppressed = 0;
    r->started = true;
    r->next_ms = now_ms + interval_ms;
    return true;
}
