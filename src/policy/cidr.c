/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cidr.c: see cidr.h. The address itself goes to inet_pton(), which is strict (four
 * decimal octets without leading zeros, no "127.1" or hex shorthands, no zone ids); the
 * prefix length is checked here digit by digit, so "/+8", "/ 8", "/8x" and "/08" are
 * refused rather than read by strtol's rules.
 */
#include "policy/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/wd.h"

static int fail(char *why, size_t cap, const char *msg)
{
    snprintf(why, cap, "%s", msg);
    return WD_EINVAL;
}

static bool all_digits_and_dots(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || *s == '.'))
            return false;
    return true;
}

int wd_cidr_parse(const char *s, size_t n, struct wd_cidr *out, bool *host_bits, char *why,
                  size_t cap)
{
    memset(out, 0, sizeof *out);
    if (host_bits)
        *host_bits = false;
    if (cap)
        why[0] = '\0';
    if (n == 0)
        return fail(why, cap, "empty address");
    if (n > WD_CIDR_MAX_LEN)
        return fail(why, cap, "too long for an address");
    char buf[WD_CIDR_MAX_LEN + 1];
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (memchr(buf, '\0', n))
        return fail(why, cap, "not an IPv4 or IPv6 address");
    char *slash = strchr(buf, '/');
    int plen = -1;
    if (slash) {
        *slash = '\0';
        const char *d = slash + 1;
        size_t k = strlen(d);
        if (k == 0)
            return fail(why, cap, "no prefix length after '/'");
        for (size_t i = 0; i < k; i++)
            if (d[i] < '0' || d[i] > '9')
                return fail(why, cap, "the prefix length is not a decimal number");
        if (k > 1 && d[0] == '0')
            return fail(why, cap, "the prefix length has a leading zero");
        if (k > 3)
            return fail(why, cap,
                        "the prefix length is out of range (0-32 for IPv4, 0-128 "
                        "for IPv6)");
        plen = 0;
        for (size_t i = 0; i < k; i++)
            plen = plen * 10 + (d[i] - '0');
    }
    int bits;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = 4;
        bits = 32;
        if (plen > 32) {
            snprintf(why, cap, "prefix length %d above 32 for an IPv4 address", plen);
            return WD_EINVAL;
        }
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = 6;
        bits = 128;
        if (plen > 128) {
            snprintf(why, cap, "prefix length %d above 128 for an IPv6 address", plen);
            return WD_EINVAL;
        }
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(out->addr, mapped, 12) == 0) {
            if (plen >= 0 && plen < 96) {
                snprintf(why, cap,
                         "an IPv4-mapped IPv6 prefix must be /96 or longer (/%d also covers "
                         "addresses that are not IPv4-mapped); for an IPv4 network write it "
                         "as IPv4, e.g. \"10.0.0.0/8\" (or \"::ffff:10.0.0.0/104\")",
                         plen);
                return WD_EINVAL;
            }
            /* tested as IPv4, as peers arriving IPv4-mapped are */
            memmove(out->addr, out->addr + 12, 4);
            memset(out->addr + 4, 0, 12);
            out->family = 4;
            bits = 32;
            if (plen >= 0)
                plen -= 96;
        }
    } else if (all_digits_and_dots(buf)) {
        return fail(why, cap, "not an IPv4 address (four decimal numbers 0-255, no leading zeros)");
    } else {
        return fail(why, cap, "not an IPv4 or IPv6 address");
    }
    if (plen < 0)
        plen = bits;
    out->plen = plen;
    bool extra = false;
    for (int i = 0; i < bits / 8; i++) {
        int take = plen >= (i + 1) * 8 ? 8 : (plen > i * 8 ? plen - i * 8 : 0);
        out->mask[i] = (uint8_t)(take ? (0xff << (8 - take)) : 0);
        extra = extra || (out->addr[i] & ~out->mask[i]) != 0;
        out->addr[i] &= out->mask[i];
    }
    if (host_bits)
        *host_bits = extra;
    return WD_OK;
}

const char *wd_cidr_str(const struct wd_cidr *c, char *buf, size_t cap)
{
    char a[INET6_ADDRSTRLEN];
    if (!inet_ntop(c->family == 4 ? AF_INET : AF_INET6, c->addr, a, sizeof a))
        a[0] = '\0';
    snprintf(buf, cap, "%s/%d", a, c->plen);
    return buf;
}
