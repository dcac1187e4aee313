/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cidr.h: the one parser for the addresses and CIDRs a policy names (`peer in [...]`,
 * and EMQX's `{ipaddr, ...}` / `{ipaddrs, [...]}` in `warden import-acl`), so that
 * `warden check` and `warden import-acl` accept and refuse exactly the same strings and
 * give them the same meaning.
 *
 * Accepted: "A.B.C.D" and "A.B.C.D/N" (N 0..32), an IPv6 address and "IPV6/N" (N 0..128).
 * A bare address is one host. N is decimal without sign or leading zero ("/08" is
 * refused: some tools read it as octal). Bits set past the prefix are ignored (as EMQX
 * does); the caller is told, so it can warn. An IPv4-mapped IPv6 CIDR
 * ("::ffff:10.0.0.0/104") is the IPv4 CIDR it covers (10.0.0.0/8), as peers arriving
 * as IPv4-mapped IPv6 are tested as IPv4; its prefix must be at least /96, because a
 * shorter one ("::ffff:10.0.0.0/8") covers IPv6 addresses that are not IPv4-mapped and
 * has no IPv4 meaning. Everything else is refused with a reason.
 */
#ifndef WD_CIDR_H
#define WD_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wd_cidr {
    int family; /* 4 or 6 */
    uint8_t addr[16];
    uint8_t mask[16];
    int plen; /* prefix length: 0..32 or 0..128 */
};

/* The longest string accepted (the longest IPv6 text form with a prefix is 49 bytes). */
#define WD_CIDR_MAX_LEN 63

/* Parses the n bytes at s into *out (zeroed first). Returns WD_OK, or WD_EINVAL with the
 * reason in why (at most cap bytes; it never quotes s, so callers choose how to show
 * the input). *host_bits (may be NULL): the address has bits set past the prefix
 * (WD_OK; they are cleared in *out). */
int wd_cidr_parse(const char *s, size_t n, struct wd_cidr *out, bool *host_bits, char *why,
                  size_t cap);

/* Formats c as "A.B.C.D/N" or "IPV6/N" into buf (at least 64 bytes). */
const char *wd_cidr_str(const struct wd_cidr *c, char *buf, size_t cap);

#endif
