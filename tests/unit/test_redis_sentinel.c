/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/store/redis_sentinel.c's pure parts: the +switch-master message parser,
 * and the options wd_redis_sentinel_start refuses before it connects to anything. The
 * discovery and the failovers run against real sentinels in tests/integration/redis_ha.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/wd.h"
#include "store/redis_sentinel.h"

static bool parse(const char *msg, const char *name, char *host, size_t cap, int *port)
{
    return wd_redis_sentinel__switch_parse(msg, strlen(msg), name, host, cap, port);
}

static void switch_master_gives_the_new_address_of_our_master(void **state)
{
    (void)state;
    char h[64];
    int port;
    assert_true(parse("mymaster 10.0.0.1 6379 10.0.0.2 6380", "mymaster", h, sizeof h, &port));
    assert_string_equal(h, "10.0.0.2");
    assert_int_equal(port, 6380);
    assert_true(parse("m ::1 6379 fd00::2 1", "m", h, sizeof h, &port));
    assert_string_equal(h, "fd00::2");
    assert_int_equal(port, 1);
}

static void switch_master_of_another_master_or_malformed_is_ignored(void **state)
{
    (void)state;
    char h[64];
    int port = 7;
    static const char *const bad[] = {
        "other 10.0.0.1 6379 10.0.0.2 6380",   /* another master */
        "mymaster2 10.0.0.1 6379 10.0.0.2 1",  /* a longer name */
        "mymaste 10.0.0.1 6379 10.0.0.2 1",    /* a shorter one */
        "mymaster 10.0.0.1 6379 10.0.0.2",     /* four fields */
        "mymaster 10.0.0.1 6379 10.0.0.2 1 x", /* six */
        "mymaster 10.0.0.1 6379 10.0.0.2 0",   /* port out of range */
        "mymaster 10.0.0.1 6379 10.0.0.2 65536",
        "mymaster 10.0.0.1 6379 10.0.0.2 +1",
        "mymaster 10.0.0.1 6379 10.0.0.2 123456",
        "mymaster  10.0.0.1 6379 10.0.0.2 1", /* empty field */
        "mymaster 10.0.0.1 6379 10.0.0.2 1 ",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (parse(bad[i], "mymaster", h, sizeof h, &port))
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(port, 0);
    }
    /* a new host that does not fit */
    assert_false(parse("m a 1 a-very-long-host-name 1", "m", h, 8, &port));
    /* a control character in the host */
    const char msg[] = "m a 1 h\x01x 1";
    assert_false(wd_redis_sentinel__switch_parse(msg, sizeof msg - 1, "m", h, sizeof h, &port));
}

static void start_refuses_bad_options_without_connecting(void **state)
{
    (void)state;
    struct wd_redis_sentinel *s = (void *)1;
    char err[128];
    const char *bad_addr[] = {"10.0.0.5"};
    struct wd_redis_sentinel_opts o = {.addrs = bad_addr, .naddrs = 1, .master_name = "m"};
    assert_int_equal(wd_redis_sentinel_start(&o, &s, err, sizeof err), WD_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, "'10.0.0.5' is not HOST:PORT"));
    const char *good[] = {"127.0.0.1:1"};
    o = (struct wd_redis_sentinel_opts){.addrs = good, .naddrs = 0, .master_name = "m"};
    assert_int_equal(wd_redis_sentinel_start(&o, &s, err, sizeof err), WD_EINVAL);
    o = (struct wd_redis_sentinel_opts){.addrs = good, .naddrs = 1, .master_name = ""};
    assert_int_equal(wd_redis_sentinel_start(&o, &s, err, sizeof err), WD_EINVAL);
    o = (struct wd_redis_sentinel_opts){
        .addrs = good, .naddrs = 1, .master_name = "m", .username = "u"};
    assert_int_equal(wd_redis_sentinel_start(&o, &s, err, sizeof err), WD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(switch_master_gives_the_new_address_of_our_master),
        cmocka_unit_test(switch_master_of_another_master_or_malformed_is_ignored),
        cmocka_unit_test(start_refuses_bad_options_without_connecting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
