/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/core/config.c: syntax, values, error reporting, validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"

static int parse(struct wd_config *c, const char *text, char **errors)
{
    wd_config_defaults(c);
    return wd_config_parse(c, "t.conf", text, strlen(text), errors);
}

static void defaults_listen_on_loopback_with_the_auth_hooks(void **state)
{
    struct wd_config c;
    wd_config_defaults(&c);
    assert_string_equal(c.listen, "127.0.0.1:9000");
    assert_null(c.policy);
    assert_true(c.policy_watch);
    assert_int_equal(c.nomatch_reply, WD_NOMATCH_CONTINUE);
    assert_int_equal(c.nhooks, 3);
    assert_string_equal(c.hooks[0], "client.authenticate");
    assert_string_equal(c.hooks[1], "client.authorize");
    assert_string_equal(c.hooks[2], "client.disconnected");
    wd_config_cleanup(&c);
}

static void embedded_config_parses_and_validates(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c, wd_config_embedded, &errors), WD_OK);
    assert_null(errors);
    assert_int_equal(wd_config_validate(&c, &errors), WD_OK);
    assert_null(c.policy);
    wd_config_cleanup(&c);
}

static void good_file_sets_every_kind_of_value(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    const char *text = "# comment\n"
                       "listen [::]:9443   # trailing comment\n"
                       "workers 4\n"
                       "shutdown_grace 1500ms\n"
                       "max_message_size 64KiB\n"
                       "keepalive_time 2m\n"
                       "hooks client.authenticate message.publish\n"
                       "message_topics a/# \"#\" b/+ # a/# here is a comment\n"
                       "nomatch_reply ignore\n"
                       "policy \"/etc/warden/my policy.policy\"\n"
                       "policy_watch off\n"
                       "log_level debug\n";
    assert_int_equal(parse(&c, text, &errors), WD_OK);
    assert_string_equal(c.listen, "[::]:9443");
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.shutdown_grace_ms, 1500);
    assert_int_equal(c.max_message_size, 65536);
    assert_int_equal(c.keepalive_time_ms, 120000);
    assert_int_equal(c.nhooks, 2);
    assert_string_equal(c.hooks[1], "message.publish");
    assert_int_equal(c.nmessage_topics, 3);
    assert_string_equal(c.message_topics[0], "a/#");
    assert_string_equal(c.message_topics[1], "#");
    assert_string_equal(c.message_topics[2], "b/+");
    assert_int_equal(c.nomatch_reply, WD_NOMATCH_IGNORE);
    assert_string_equal(c.policy, "/etc/warden/my policy.policy");
    assert_false(c.policy_watch);
    assert_int_equal(c.log_level, WD_LOG_DEBUG);
    assert_string_equal(c.source, "t.conf");
    wd_config_cleanup(&c);
}

static void all_errors_are_reported_in_one_pass_with_file_and_line(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    const char *text = "bogus 1\n"
                       "workers many\n"
                       "\n"
                       "hooks client.auth\n"
                       "listen \"unterminated\n";
    assert_int_equal(parse(&c, text, &errors), WD_ESYNTAX);
    assert_non_null(errors);
    assert_non_null(strstr(errors, "t.conf:1: unknown directive 'bogus'"));
    assert_non_null(
        strstr(errors, "t.conf:2: 'workers' must be an integer from 0 to 256, got 'many'"));
    assert_non_null(strstr(errors, "t.conf:4: unknown hook 'client.auth'"));
    assert_non_null(strstr(errors, "t.conf:5: unterminated quoted string"));
    free(errors);
    wd_config_cleanup(&c);
}

static void repeated_single_valued_directive_is_an_error(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c, "workers 1\nworkers 2\n", &errors), WD_ESYNTAX);
    assert_string_equal(errors, "t.conf:2: 'workers' is set more than once");
    free(errors);
    wd_config_cleanup(&c);
}

static void duplicate_hook_and_bad_boolean_are_errors(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c, "policy_watch maybe\n", &errors), WD_ESYNTAX);
    assert_string_equal(errors, "t.conf:1: 'policy_watch' must be on or off, got 'maybe'");
    free(errors);
    wd_config_cleanup(&c);
    assert_int_equal(parse(&c, "hooks client.authorize client.authorize\n", &errors), WD_ESYNTAX);
    assert_non_null(strstr(errors, "listed twice"));
    free(errors);
    wd_config_cleanup(&c);
}

static void wrong_argument_counts_are_errors(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c, "listen\nworkers 1 2\nuser onlyname\nhooks\n", &errors), WD_ESYNTAX);
    assert_non_null(strstr(errors, "t.conf:1: 'listen' takes exactly one value, got 0"));
    assert_non_null(strstr(errors, "t.conf:2: 'workers' takes exactly one value, got 2"));
    /* users moved to the policy file */
    assert_non_null(strstr(errors, "t.conf:3: unknown directive 'user'"));
    assert_non_null(strstr(errors, "t.conf:4: 'hooks' needs at least one hook name"));
    free(errors);
    wd_config_cleanup(&c);
}

static void nul_byte_in_file_is_an_error(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    wd_config_defaults(&c);
    assert_int_equal(wd_config_parse(&c, "t.conf", "workers 1\0x\n", 12, &errors), WD_ESYNTAX);
    assert_non_null(strstr(errors, "NUL byte"));
    free(errors);
    wd_config_cleanup(&c);
}

static void durations_need_units_and_reject_overflow(void **state)
{
    int ms;
    assert_int_equal(wd_config_parse_duration("5s", &ms), WD_OK);
    assert_int_equal(ms, 5000);
    assert_int_equal(wd_config_parse_duration("250ms", &ms), WD_OK);
    assert_int_equal(ms, 250);
    assert_int_equal(wd_config_parse_duration("0", &ms), WD_OK);
    assert_int_equal(ms, 0);
    assert_int_equal(wd_config_parse_duration("5", &ms), WD_EINVAL);
    assert_int_equal(wd_config_parse_duration("-5s", &ms), WD_EINVAL);
    assert_int_equal(wd_config_parse_duration("5 s", &ms), WD_EINVAL);
    assert_int_equal(wd_config_parse_duration("999999999h", &ms), WD_ERANGE);
    assert_int_equal(wd_config_parse_duration("99999999999999999999999s", &ms), WD_EINVAL);
}

static void sizes_accept_binary_suffixes_and_reject_overflow(void **state)
{
    int b;
    assert_int_equal(wd_config_parse_size("4096", &b), WD_OK);
    assert_int_equal(b, 4096);
    assert_int_equal(wd_config_parse_size("4MiB", &b), WD_OK);
    assert_int_equal(b, 4 << 20);
    assert_int_equal(wd_config_parse_size("64K", &b), WD_OK);
    assert_int_equal(b, 65536);
    assert_int_equal(wd_config_parse_size("4TB", &b), WD_EINVAL);
    assert_int_equal(wd_config_parse_size("3GiB", &b), WD_ERANGE);
}

static void out_of_range_values_are_errors(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c, "max_message_size 100\nworkers 257\n", &errors), WD_ESYNTAX);
    assert_non_null(strstr(errors, "t.conf:1: 'max_message_size'"));
    assert_non_null(strstr(errors, "t.conf:2: 'workers'"));
    free(errors);
    wd_config_cleanup(&c);
}

static void command_line_set_uses_config_syntax(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    wd_config_defaults(&c);
    assert_int_equal(wd_config_set(&c, "hooks", "client.authorize message.publish", &errors),
                     WD_OK);
    assert_int_equal(c.nhooks, 2);
    assert_int_equal(wd_config_set_from(&c, "--workers", "workers", "x", &errors), WD_EINVAL);
    assert_non_null(strstr(errors, "command line: --workers: 'workers' must be"));
    free(errors);
    /* --set names the flag the user typed, not a "--nosuch" flag that does not exist */
    assert_int_equal(wd_config_set(&c, "nosuch", "1", &errors), WD_EINVAL);
    assert_string_equal(errors, "command line: --set nosuch: unknown directive 'nosuch'");
    free(errors);
    wd_config_cleanup(&c);
}

static void a_bad_listen_is_blamed_where_it_is_given(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    const char *bad[] = {"nocolon", ":9000", "127.0.0.1:", "127.0.0.1:65536", "h:-1", "h:9x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wd_config_defaults(&c);
        assert_int_equal(wd_config_set_from(&c, "--listen", "listen", bad[i], &errors), WD_EINVAL);
        assert_non_null(strstr(errors, "command line: --listen: 'listen' expects HOST:PORT"));
        free(errors);
        wd_config_cleanup(&c);
    }
    assert_int_equal(parse(&c, "workers 1\nlisten nocolon\n", &errors), WD_ESYNTAX);
    assert_non_null(strstr(errors, "t.conf:2: 'listen' expects HOST:PORT"));
    free(errors);
    wd_config_cleanup(&c);
}

static void validate_checks_tls_pairs(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c, "tls_key k.pem\ntls_client_ca ca.pem\n", &errors), WD_OK);
    assert_int_equal(wd_config_validate(&c, &errors), WD_EINVAL);
    assert_non_null(strstr(errors, "tls_key is set but tls_cert is not"));
    assert_non_null(strstr(errors, "tls_client_ca (mutual TLS) needs tls_cert"));
    free(errors);
    wd_config_cleanup(&c);
}

/* The printed configuration (wd_config_print), NUL-terminated in buf. */
static void print_into(const struct wd_config *c, char *buf, size_t cap)
{
    char path[] = "/tmp/wd_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    wd_config_print(c, fd);
    memset(buf, 0, cap);
    lseek(fd, 0, SEEK_SET);
    assert_true(read(fd, buf, cap - 1) > 0);
    close(fd);
    unlink(path);
}

/* gRPC core was removed in 0.2.0: h2 is the default and the only transport, and configs
 * written for the transitional stage (`transport h2`) keep loading. */
static void transport_is_h2_by_default_and_h2_is_accepted(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    wd_config_defaults(&c);
    assert_int_equal(c.transport, WD_CONFIG_TRANSPORT_H2);
    wd_config_cleanup(&c);
    assert_int_equal(parse(&c, "transport h2\n", &errors), WD_OK);
    assert_null(errors);
    assert_null(c.warnings);
    char buf[8192];
    print_into(&c, buf, sizeof buf);
    assert_non_null(strstr(buf, "\ntransport h2\n"));
    wd_config_cleanup(&c);
}

/* Asking for the removed server is an error naming the line, never a silent fallback. */
static void transport_grpc_core_is_an_error_naming_the_line(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c, "workers 2\ntransport grpc-core\n", &errors), WD_ESYNTAX);
    assert_non_null(strstr(errors, "t.conf:2: 'transport grpc-core': gRPC core was removed in "
                                   "0.2.0; remove the line"));
    free(errors);
    wd_config_cleanup(&c);
    wd_config_defaults(&c);
    assert_int_equal(wd_config_set(&c, "transport", "grpc-core", &errors), WD_EINVAL);
    assert_non_null(strstr(errors, "command line: --set transport: 'transport grpc-core': gRPC "
                                   "core was removed in 0.2.0"));
    free(errors);
    assert_int_equal(wd_config_set(&c, "transport", "quic", &errors), WD_EINVAL);
    assert_non_null(strstr(errors, "'transport' must be one of h2; got 'quic'"));
    free(errors);
    wd_config_cleanup(&c);
}

/* `prepost` only tuned gRPC core: it loads, with a warning per line, and is not printed. */
static void prepost_loads_with_a_warning_per_line_and_is_not_printed(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c, "workers 2\nprepost 64\n# x\nprepost 0\n", &errors), WD_OK);
    assert_null(errors);
    assert_non_null(c.warnings);
    assert_string_equal(c.warnings,
                        "t.conf:2: 'prepost' has no effect: it sized gRPC core's pre-posted "
                        "requests, and gRPC core was removed in 0.2.0; remove the line\n"
                        "t.conf:4: 'prepost' has no effect: it sized gRPC core's pre-posted "
                        "requests, and gRPC core was removed in 0.2.0; remove the line");
    assert_int_equal(c.workers, 2);
    char buf[8192];
    print_into(&c, buf, sizeof buf);
    assert_null(strstr(buf, "prepost"));
    wd_config_cleanup(&c);
    wd_config_defaults(&c);
    assert_int_equal(wd_config_set(&c, "prepost", "64", &errors), WD_OK);
    assert_non_null(strstr(c.warnings, "command line: --set prepost: 'prepost' has no effect"));
    wd_config_cleanup(&c);
}

static void print_shows_the_effective_values(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c, "workers 3\npolicy p.policy\n", &errors), WD_OK);
    char path[] = "/tmp/wd_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    wd_config_print(&c, fd);
    char buf[4096] = {0};
    lseek(fd, 0, SEEK_SET);
    assert_true(read(fd, buf, sizeof buf - 1) > 0);
    close(fd);
    unlink(path);
    assert_non_null(strstr(buf, "workers 3\n"));
    assert_non_null(strstr(buf, "policy p.policy\n"));
    assert_non_null(strstr(buf, "policy_watch on\n"));
    wd_config_cleanup(&c);
}

/* Found by tests/fuzz/fuzz_config: `warden config` printed values bare, so a value with a
 * blank, a quote or a leading '#' (the lone "#" filter) did not read back as itself. */
static void printed_configuration_parses_back_to_the_same_values(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c,
                           "jwt_iss \"https://a b\"\nmessage_topics \"#\" a/# \"x\\\"y\"\n"
                           "jwt_verify_claim tenant \"a \\\\ b\"\npolicy \"/etc/my policy\"\n",
                           &errors),
                     WD_OK);
    char path[] = "/tmp/wd_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    wd_config_print(&c, fd);
    char buf[8192] = {0};
    lseek(fd, 0, SEEK_SET);
    assert_true(read(fd, buf, sizeof buf - 1) > 0);
    close(fd);
    unlink(path);
    struct wd_config again;
    wd_config_defaults(&again);
    assert_int_equal(wd_config_parse(&again, "printed", buf, strlen(buf), &errors), WD_OK);
    assert_string_equal(again.jwt_iss, "https://a b");
    assert_string_equal(again.policy, "/etc/my policy");
    assert_int_equal(again.nmessage_topics, 3);
    assert_string_equal(again.message_topics[0], "#");
    assert_string_equal(again.message_topics[1], "a/#");
    assert_string_equal(again.message_topics[2], "x\"y");
    assert_int_equal(again.njwt_verify_claims, 2);
    assert_string_equal(again.jwt_verify_claims[1], "a \\ b");
    wd_config_cleanup(&again);
    wd_config_cleanup(&c);
}

/* Store settings: choices are checked, claims repeat, secrets never print. */
static void store_directives_check_choices_repeat_claims_and_hide_secrets(void **state)
{
    (void)state;
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c,
                           "redis_host 127.0.0.1\nredis_password \"hunter2-redis\"\n"
                           "redis_password_hash bcrypt\nredis_on_error next\n"
                           "jwt_secret \"hunter2-jwt\"\njwt_verify_claim clientid \"${clientid}\"\n"
                           "jwt_verify_claim tenant acme\ncache off\nsession_ttl 1h\n",
                           &errors),
                     WD_OK);
    assert_int_equal(c.redis_password_hash, WD_CONFIG_HASH_BCRYPT);
    assert_int_equal(c.redis_on_error, WD_CONFIG_FAIL_NEXT);
    assert_int_equal(c.njwt_verify_claims, 4);
    assert_string_equal(c.jwt_verify_claims[1], "${clientid}");
    assert_false(c.cache);
    assert_int_equal(c.session_ttl_ms, 3600000);
    char path[] = "/tmp/wd_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    wd_config_print(&c, fd);
    char buf[16384] = {0};
    lseek(fd, 0, SEEK_SET);
    assert_true(read(fd, buf, sizeof buf - 1) > 0);
    close(fd);
    unlink(path);
    assert_null(strstr(buf, "hunter2"));
    assert_non_null(strstr(buf, "redis_password <redacted>\n"));
    assert_non_null(strstr(buf, "jwt_secret <redacted>\n"));
    assert_non_null(strstr(buf, "jwt_verify_claim \"tenant\" \"acme\"\n"));
    assert_non_null(strstr(buf, "redis_on_error next\n"));
    wd_config_cleanup(&c);

    assert_int_equal(parse(&c,
                           "redis_password_hash rot13\nredis_on_error allow\njwt_from header\n"
                           "jwt_verify_claim a b\njwt_verify_claim a c\njwt_verify_claim solo\n",
                           &errors),
                     WD_ESYNTAX);
    assert_non_null(strstr(errors, ":1: 'redis_password_hash' must be one of plain,"));
    assert_non_null(strstr(errors, ":2: 'redis_on_error' must be one of deny, next; got 'allow'"));
    assert_non_null(strstr(errors, ":3: 'jwt_from' must be one of password, username"));
    assert_non_null(strstr(errors, ":5: claim 'a' is already checked"));
    assert_non_null(strstr(errors, ":6: 'jwt_verify_claim' takes a claim name and a value"));
    free(errors);
    wd_config_cleanup(&c);
}

/* max_message_size auto (the default): small unless a registered hook carries MQTT packets. */
static void request_limit_is_small_unless_a_hook_carries_packets(void **state)
{
    (void)state;
    struct wd_config c;
    char *errors = NULL;
    wd_config_defaults(&c);
    assert_int_equal(c.max_message_size, 0);
    assert_int_equal(wd_config_request_limit(&c), WD_CONFIG_REQUEST_SMALL);
    assert_int_equal(WD_CONFIG_REQUEST_SMALL, 256 << 10);
    wd_config_cleanup(&c);

    /* every hook that is not a packet-carrying one keeps the small limit */
    assert_int_equal(parse(&c,
                           "hooks client.authenticate client.authorize client.connected "
                           "client.disconnected session.created session.subscribed "
                           "session.unsubscribed session.resumed session.discarded "
                           "session.takenover session.terminated\n",
                           &errors),
                     WD_OK);
    assert_int_equal(wd_config_request_limit(&c), WD_CONFIG_REQUEST_SMALL);
    wd_config_cleanup(&c);

    static const char *const packet_hooks[] = {
        "message.publish",  "message.delivered",  "message.acked",  "message.dropped",
        "client.subscribe", "client.unsubscribe", "client.connect", "client.connack",
    };
    for (size_t i = 0; i < sizeof packet_hooks / sizeof packet_hooks[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "hooks client.authenticate %s\n", packet_hooks[i]);
        assert_int_equal(parse(&c, text, &errors), WD_OK);
        assert_int_equal(wd_config_request_limit(&c), WD_CONFIG_REQUEST_PACKET);
        assert_true(wd_config_request_limit(&c) > (1 << 20)); /* EMQX's max_packet_size */
        wd_config_cleanup(&c);
    }

    /* a set value wins over the hooks; `auto` goes back to deriving it */
    assert_int_equal(parse(&c, "hooks message.publish\nmax_message_size 64KiB\n", &errors), WD_OK);
    assert_int_equal(wd_config_request_limit(&c), 65536);
    assert_int_equal(wd_config_set(&c, "max_message_size", "auto", &errors), WD_OK);
    assert_int_equal(wd_config_request_limit(&c), WD_CONFIG_REQUEST_PACKET);
    wd_config_cleanup(&c);

    assert_int_equal(parse(&c, "max_message_size huge\n", &errors), WD_ESYNTAX);
    assert_non_null(strstr(errors, "'max_message_size' must be auto or a size"));
    free(errors);
    wd_config_cleanup(&c);

    assert_int_equal(parse(&c, "", &errors), WD_OK);
    char path[] = "/tmp/wd_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    wd_config_print(&c, fd);
    char buf[16384] = {0};
    lseek(fd, 0, SEEK_SET);
    assert_true(read(fd, buf, sizeof buf - 1) > 0);
    close(fd);
    unlink(path);
    assert_non_null(strstr(buf, "\nmax_message_size auto   # 256KiB with these hooks\n"));
    assert_non_null(strstr(buf, "\nallow_core_dumps off\n"));
    wd_config_cleanup(&c);
}

static void listen_is_loopback_only_for_literal_loopback_addresses(void **state)
{
    (void)state;
    static const char *const loopback[] = {
        "127.0.0.1:9000", "127.0.0.1:0",    "127.3.2.1:9000",          "[::1]:9000",
        "localhost:9000", "LocalHost:9000", "[::ffff:127.0.0.1]:9000",
    };
    static const char *const other[] = {
        "0.0.0.0:9000",
        "[::]:9000",
        "10.0.0.1:9000",
        "128.0.0.1:9000",
        "[::2]:9000",
        "[::ffff:10.0.0.1]:9000",
        "::1:9000", /* unbracketed IPv6: ambiguous */
        "localhost.evil.example:9000",
        "127.0.0.1.nip.io:9000",
        "ipv4:127.0.0.1:9000", /* a gRPC URI, not HOST:PORT */
        "unix:/run/warden.sock",
        ":9000",
        "9000",
        "",
    };
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++)
        assert_true(wd_config_listen_is_loopback(loopback[i]));
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (wd_config_listen_is_loopback(other[i]))
            fail_msg("'%s' taken for a loopback address", other[i]);
}

/* The embedded demo policy (demo/demo) must not answer clients on other hosts. */
static void validate_refuses_the_demo_policy_on_a_non_loopback_listen(void **state)
{
    (void)state;
    struct wd_config c;
    char *errors = NULL;
    static const char *const exposed[] = {"listen 0.0.0.0:9000\n", "listen [::]:9000\n",
                                          "listen 192.0.2.1:9000\n"};
    for (size_t i = 0; i < sizeof exposed / sizeof exposed[0]; i++) {
        assert_int_equal(parse(&c, exposed[i], &errors), WD_OK);
        assert_int_equal(wd_config_validate(&c, &errors), WD_EINVAL);
        assert_non_null(strstr(errors, "t.conf:1: no `policy` is set"));
        assert_non_null(strstr(errors, "set `policy FILE`"));
        free(errors);
        /* the same address with a policy is fine */
        assert_int_equal(wd_config_set(&c, "policy", "/etc/warden/warden.policy", &errors), WD_OK);
        assert_int_equal(wd_config_validate(&c, &errors), WD_OK);
        wd_config_cleanup(&c);
    }
    /* a --listen flag is checked like the file */
    assert_int_equal(parse(&c, "listen 127.0.0.1:9000\n", &errors), WD_OK);
    assert_int_equal(wd_config_validate(&c, &errors), WD_OK);
    assert_int_equal(wd_config_set(&c, "listen", "0.0.0.0:9000", &errors), WD_OK);
    assert_int_equal(wd_config_validate(&c, &errors), WD_EINVAL);
    free(errors);
    wd_config_cleanup(&c);
}

static void allow_core_dumps_is_off_unless_set(void **state)
{
    (void)state;
    struct wd_config c;
    char *errors = NULL;
    wd_config_defaults(&c);
    assert_false(c.allow_core_dumps);
    wd_config_cleanup(&c);
    assert_int_equal(parse(&c, "allow_core_dumps yes\n", &errors), WD_OK);
    assert_true(c.allow_core_dumps);
    wd_config_cleanup(&c);
}

static void relative_paths_in_a_file_resolve_against_its_directory(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    const char *text = "policy p.policy\ntls_cert /abs/c.pem\ntls_key tls/k.pem\n";
    wd_config_defaults(&c);
    assert_int_equal(wd_config_parse(&c, "/etc/warden/warden.conf", text, strlen(text), &errors),
                     WD_OK);
    assert_string_equal(c.policy, "/etc/warden/p.policy");
    assert_string_equal(c.tls_cert, "/abs/c.pem");
    assert_string_equal(c.tls_key, "/etc/warden/tls/k.pem");
    /* the command line: as given, relative to the working directory */
    assert_int_equal(wd_config_set(&c, "policy", "here.policy", &errors), WD_OK);
    assert_string_equal(c.policy, "here.policy");
    wd_config_cleanup(&c);
    /* a file named without a directory: the working directory too */
    assert_int_equal(parse(&c, "policy p.policy\n", &errors), WD_OK);
    assert_string_equal(c.policy, "p.policy");
    wd_config_cleanup(&c);
}

static void decision_log_words_stay_words_and_files_resolve(void **state)
{
    struct wd_config c;
    char *errors = NULL;
    const char *text = "decision_log stderr\nmetrics_listen 127.0.0.1:9100\n";
    wd_config_defaults(&c);
    assert_int_equal(c.decision_log.to, WD_CONFIG_OUTPUT_OFF); /* off by default */
    assert_null(c.decision_log.file);
    assert_null(c.metrics_listen);
    assert_int_equal(c.decision_log_events, WD_CONFIG_EVENTS_DENY);
    assert_int_equal(wd_config_parse(&c, "/etc/warden/warden.conf", text, strlen(text), &errors),
                     WD_OK);
    assert_int_equal(c.decision_log.to, WD_CONFIG_OUTPUT_STDERR);
    assert_string_equal(c.metrics_listen, "127.0.0.1:9100");
    wd_config_cleanup(&c);
    text = "decision_log d.log\ndecision_log_events all\ndecision_log_queue 16\n";
    wd_config_defaults(&c);
    assert_int_equal(wd_config_parse(&c, "/etc/warden/warden.conf", text, strlen(text), &errors),
                     WD_OK);
    assert_int_equal(c.decision_log.to, WD_CONFIG_OUTPUT_FILE);
    assert_string_equal(c.decision_log.file, "/etc/warden/d.log");
    assert_int_equal(c.decision_log_events, WD_CONFIG_EVENTS_ALL);
    assert_int_equal(c.decision_log_queue, 16);
    wd_config_cleanup(&c);
    assert_int_equal(parse(&c, "decision_log_events some\n", &errors), WD_ESYNTAX);
    free(errors);
    errors = NULL;
    wd_config_cleanup(&c);
    assert_int_equal(parse(&c, "decision_log_queue 1\n", &errors), WD_ESYNTAX);
    free(errors);
    wd_config_cleanup(&c);
}

/* ---- golden files: what --print-config prints (tests/data/config/) ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Compares text with the golden file, or rewrites it under WD_UPDATE_GOLDEN=1. */
static void matches_golden(const char *path, const char *text)
{
    if (getenv("WD_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        return;
    }
    char *want = slurp(path);
    if (!want)
        fail_msg("cannot read %s (run the tests from the repository root)", path);
    if (strcmp(want, text) != 0)
        fail_msg("%s differs; got:\n%s", path, text);
    free(want);
}

/* --print-config of the defaults, and of a file that sets every directive to something else:
 * the option table drives both, so a change to how the table is declared must not change a
 * byte of either. */
static void printed_defaults_and_full_configuration_match_the_golden_files(void **state)
{
    (void)state;
    struct wd_config c;
    char *errors = NULL;
    static char buf[65536];
    wd_config_defaults(&c);
    print_into(&c, buf, sizeof buf);
    matches_golden("tests/data/config/defaults.golden", buf);
    wd_config_cleanup(&c);

    char *text = slurp("tests/data/config/full.conf");
    if (!text)
        fail_msg("cannot read tests/data/config/full.conf (run from the repository root)");
    wd_config_defaults(&c);
    int rc = wd_config_parse(&c, "/etc/warden/warden.conf", text, strlen(text), &errors);
    if (rc != WD_OK)
        fail_msg("full.conf: %s", errors);
    print_into(&c, buf, sizeof buf);
    matches_golden("tests/data/config/full.golden", buf);
    wd_config_cleanup(&c);
    free(text);

    /* the decision log's words, as given */
    assert_int_equal(parse(&c, "decision_log off\n", &errors), WD_OK);
    print_into(&c, buf, sizeof buf);
    assert_non_null(strstr(buf, "\ndecision_log off\n"));
    wd_config_cleanup(&c);
    assert_int_equal(parse(&c, "decision_log stderr\n", &errors), WD_OK);
    print_into(&c, buf, sizeof buf);
    assert_non_null(strstr(buf, "\ndecision_log stderr\n"));
    wd_config_cleanup(&c);
}

/* Choices are enums read through the table's words: aliases read as one value, printed as the
 * first word; an unknown word is refused with the list of words the table declares. */
static void choices_are_enums_read_through_the_table(void **state)
{
    (void)state;
    struct wd_config c;
    char *errors = NULL;
    wd_config_defaults(&c);
    assert_int_equal(c.redis_password_hash, WD_CONFIG_HASH_SHA256);
    assert_int_equal(c.redis_salt_position, WD_CONFIG_SALT_PREFIX);
    assert_int_equal(c.redis_pbkdf2_mac, WD_CONFIG_MAC_SHA256);
    assert_int_equal(c.redis_on_error, WD_CONFIG_FAIL_DENY);
    assert_int_equal(c.jwt_from, WD_CONFIG_TOKEN_PASSWORD);
    assert_int_equal(c.jwt_on_invalid, WD_CONFIG_FAIL_DENY);
    assert_int_equal(c.log_level, WD_LOG_INFO);
    assert_int_equal(c.decision_log_events, WD_CONFIG_EVENTS_DENY);
    assert_int_equal(c.decision_log.to, WD_CONFIG_OUTPUT_OFF);
    assert_int_equal(c.session_store, WD_CONFIG_SESSION_STORE_AUTO); /* chosen at start */
    assert_int_equal(wd_config_set(&c, "session_store", "redis", &errors), WD_OK);
    assert_int_equal(c.session_store, WD_CONFIG_SESSION_STORE_REDIS);
    wd_config_cleanup(&c);

    assert_int_equal(parse(&c,
                           "redis_password_hash sha1\nredis_pbkdf2_mac sha\n"
                           "redis_salt_position disable\njwt_from username\n"
                           "jwt_on_invalid next\nlog_level warn\n",
                           &errors),
                     WD_OK);
    assert_int_equal(c.redis_password_hash, WD_CONFIG_HASH_SHA1);
    assert_int_equal(c.redis_pbkdf2_mac, WD_CONFIG_MAC_SHA1);
    assert_int_equal(c.redis_salt_position, WD_CONFIG_SALT_DISABLE);
    assert_int_equal(c.jwt_from, WD_CONFIG_TOKEN_USERNAME);
    assert_int_equal(c.jwt_on_invalid, WD_CONFIG_FAIL_NEXT);
    assert_int_equal(c.log_level, WD_LOG_WARN);
    assert_string_equal(wd_config_choice_name("redis_password_hash", c.redis_password_hash), "sha");
    assert_string_equal(wd_config_choice_name("redis_on_error", WD_CONFIG_FAIL_NEXT), "next");
    assert_string_equal(wd_config_choice_name("redis_on_error", 99), "?");
    wd_config_cleanup(&c);

    assert_int_equal(parse(&c, "nomatch_reply drop\nlog_level loud\n", &errors), WD_ESYNTAX);
    assert_non_null(
        strstr(errors, "t.conf:1: 'nomatch_reply' must be one of continue, ignore; got 'drop'"));
    assert_non_null(strstr(
        errors, "t.conf:2: 'log_level' must be one of error, warn, info, debug; got 'loud'"));
    free(errors);
    wd_config_cleanup(&c);
}

/* ---- the table against docs/configuration.md ---- */

/* The value `name` prints with after `name value` was set from the command line: how two
 * spellings of one value ("60s", "1m") are compared. NULL when the value does not parse. */
static char *printed_value(const char *name, const char *value)
{
    struct wd_config c;
    char *errors = NULL;
    static char buf[65536];
    wd_config_defaults(&c);
    if (wd_config_set(&c, name, value, &errors) != WD_OK) {
        free(errors);
        wd_config_cleanup(&c);
        return NULL;
    }
    print_into(&c, buf, sizeof buf);
    wd_config_cleanup(&c);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *at = strstr(buf, key);
    if (!at)
        return NULL;
    at += strlen(key);
    size_t n = strcspn(at, "\n");
    const char *hash = strstr(at, "   #"); /* max_message_size auto   # 256KiB ... */
    if (hash && (size_t)(hash - at) < n)
        n = (size_t)(hash - at);
    return strndup(at, n);
}

static char *trim(char *s)
{
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        s[--n] = '\0';
    return s;
}

/* Splits a Markdown table row at its unescaped '|' (a cell may hold "on\|off"). Returns the
 * number of cells written to cells[]; the row's text is modified. */
static int row_cells(char *row, char **cells, int max)
{
    int n = 0;
    char *p = row;
    if (*p != '|')
        return 0;
    p++;
    char *start = p;
    for (; *p && n < max; p++) {
        if (*p == '\\' && p[1] == '|') {
            p++;
            continue;
        }
        if (*p == '|') {
            *p = '\0';
            cells[n++] = trim(start);
            start = p + 1;
        }
    }
    return n;
}

/* Every directive of the table has a row in a "| directive | default | meaning |" table of
 * docs/configuration.md, every such row names a directive of the table, and the default
 * the row states is the table's: `VALUE` (compared as the value it parses to, so `60s` and
 * `1m` are one), or for a directive with no default in the table "unset ...", "none", or
 * a default chosen at start from other directives ("... when ..."). */
static void every_directive_is_documented_with_its_default(void **state)
{
    (void)state;
    char *doc = slurp("docs/configuration.md");
    if (!doc)
        fail_msg("cannot read docs/configuration.md (run the tests from the repository root)");
    size_t ndir = wd_config_directive_count();
    unsigned char *documented = calloc(ndir, 1);
    char problems[8192] = "";
    bool in_table = false;
    for (char *line = doc, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "| directive | default | meaning |", 33) == 0) {
            in_table = true;
            continue;
        }
        if (line[0] != '|') {
            in_table = false;
            continue;
        }
        if (!in_table || strncmp(line, "|---", 4) == 0)
            continue;
        char *cells[8];
        if (row_cells(line, cells, 8) < 3 || cells[0][0] != '`')
            continue;
        char name[128];
        size_t nl = strcspn(cells[0] + 1, " `");
        snprintf(name, sizeof name, "%.*s", (int)nl, cells[0] + 1);
        const char *dname = NULL, *def = NULL;
        size_t i;
        for (i = 0; i < ndir; i++) {
            wd_config_directive(i, &dname, &def);
            if (strcmp(dname, name) == 0)
                break;
        }
        char msg[512] = "";
        const char *cell = cells[1];
        size_t cl = strlen(cell);
        if (i == ndir) {
            snprintf(msg, sizeof msg, "documented, but not a directive: %s\n", name);
        } else {
            documented[i] = 1;
            /* no default in the table: "unset ...", "none", or a default chosen at start
             * from other directives ("`redis` when Redis is configured, else `local`") */
            bool single =
                cl >= 2 && cell[0] == '`' && cell[cl - 1] == '`' && !memchr(cell + 1, '`', cl - 2);
            bool no_default = strncmp(cell, "unset", 5) == 0 || strcmp(cell, "none") == 0 ||
                              strstr(cell, " when ");
            if (!def && !no_default) {
                snprintf(msg, sizeof msg,
                         "%s: documented default %s, the table has none (write unset or none)\n",
                         name, cell);
            } else if (def && !single) {
                snprintf(msg, sizeof msg, "%s: documented default %s, the table's is `%s`\n", name,
                         cell, def);
            } else if (def) {
                char *docv = strndup(cell + 1, cl - 2);
                char *want = printed_value(name, def), *got = printed_value(name, docv);
                if (!want || !got || strcmp(want, got) != 0)
                    snprintf(msg, sizeof msg,
                             "%s: documented default `%s` (%s), the table's default is %s (%s)\n",
                             name, docv, got ? got : "does not parse", def,
                             want ? want : "does not parse");
                free(docv);
                free(want);
                free(got);
            }
        }
        strncat(problems, msg, sizeof problems - strlen(problems) - 1);
    }
    for (size_t i = 0; i < ndir; i++) {
        const char *dname, *def;
        wd_config_directive(i, &dname, &def);
        if (!documented[i]) {
            char msg[256];
            snprintf(msg, sizeof msg, "not documented in docs/configuration.md: %s\n", dname);
            strncat(problems, msg, sizeof problems - strlen(problems) - 1);
        }
    }
    free(documented);
    free(doc);
    if (problems[0])
        fail_msg("docs/configuration.md and the option table disagree:\n%s", problems);
}

/* Rules that involve several directives name the file:line (or the flag) of each directive
 * involved, so they can be reported in the same pass as the line errors (main.c). */
static void cross_directive_errors_name_the_line_of_each_directive(void **state)
{
    (void)state;
    struct wd_config c;
    char *errors = NULL;
    const char *text = "workers 2\n"                                   /* 1 */
                       "tls_key k.pem\n"                               /* 2 */
                       "keepalive_time 20s\n"                          /* 3 */
                       "keepalive_timeout 30s\n"                       /* 4 */
                       "min_ping_interval 2m\n"                        /* 5 */
                       "redis_host 127.0.0.1\n"                        /* 6 */
                       "redis_socket /run/redis.sock\n"                /* 7 */
                       "jwt_secret 0123456789abcdef0123456789abcdef\n" /* 8 */
                       "jwt_jwks_file /etc/warden/jwks.json\n"         /* 9 */
                       "jwt_jwks_ca /etc/warden/ca.pem\n"              /* 10 */
                       "tls_client_ca ca.pem\n"                        /* 11 */
                       "listen 0.0.0.0:9000\n";                        /* 12 */
    assert_int_equal(parse(&c, text, &errors), WD_OK);
    assert_int_equal(wd_config_validate(&c, &errors), WD_EINVAL);
    static const char *const want[] = {
        "t.conf:2: tls_key is set but tls_cert is not",
        "t.conf:4: keepalive_timeout (30s) must be shorter than keepalive_time (20s, t.conf:3)",
        "t.conf:5: min_ping_interval above 60s would penalize EMQX",
        "t.conf:7: redis_host and redis_socket are both set (redis_host: t.conf:6): choose one",
        "t.conf:9: set exactly one JWT key source: jwt_secret, jwt_public_key, jwt_jwks_file or "
        "jwt_jwks_url (jwt_secret: t.conf:8)",
        "t.conf:10: jwt_jwks_ca is set but jwt_jwks_url is not",
        "t.conf:11: tls_client_ca (mutual TLS) needs tls_cert and tls_key",
        "t.conf:12: no `policy` is set",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(errors, want[i]))
            fail_msg("missing \"%s\" in:\n%s", want[i], errors);
    free(errors);
    wd_config_cleanup(&c);

    /* from the command line: the flag; a default: named as such */
    wd_config_defaults(&c);
    assert_int_equal(wd_config_set_from(&c, "--tls-cert", "tls_cert", "c.pem", &errors), WD_OK);
    assert_int_equal(wd_config_set(&c, "keepalive_timeout", "2m", &errors), WD_OK);
    assert_int_equal(wd_config_set(&c, "redis_password", "x", &errors), WD_OK);
    assert_int_equal(wd_config_validate(&c, &errors), WD_EINVAL);
    assert_non_null(strstr(errors, "command line: --tls-cert: tls_cert is set but tls_key is not"));
    assert_non_null(strstr(errors, "command line: --set keepalive_timeout: keepalive_timeout (2m) "
                                   "must be shorter than keepalive_time (1m, the default)"));
    assert_non_null(strstr(errors, "command line: --set redis_password: redis_password is set "
                                   "but none of redis_host, redis_socket, redis_sentinel"));
    free(errors);
    wd_config_cleanup(&c);
}

/* A directive whose line was refused is already reported: the rules it takes part in are not
 * checked against the default it kept (a `tls_key` with a bad line is not "not set"). */
static void cross_directive_rules_skip_a_directive_whose_line_was_refused(void **state)
{
    (void)state;
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c,
                           "tls_cert c.pem\ntls_key a b\nkeepalive_timeout 90s\n"
                           "keepalive_time 30x\n",
                           &errors),
                     WD_ESYNTAX);
    assert_non_null(strstr(errors, "t.conf:2: 'tls_key' takes exactly one value"));
    free(errors);
    errors = NULL;
    int rc = wd_config_validate(&c, &errors);
    if (rc != WD_OK)
        fail_msg("rules with a refused directive were checked:\n%s", errors);
    wd_config_cleanup(&c);
}

/* ---- redis_sentinel ---- */

static void sentinel_addresses_split_host_and_port_and_refuse_the_rest(void **state)
{
    (void)state;
    char h[64];
    int port;
    assert_true(wd_config_sentinel_split("10.0.0.5:26379", h, sizeof h, &port));
    assert_string_equal(h, "10.0.0.5");
    assert_int_equal(port, 26379);
    assert_true(wd_config_sentinel_split("[fd00::5]:26380", h, sizeof h, &port));
    assert_string_equal(h, "fd00::5");
    assert_int_equal(port, 26380);
    assert_true(wd_config_sentinel_split("sentinel-0.sentinel:1", h, sizeof h, &port));
    assert_string_equal(h, "sentinel-0.sentinel");
    static const char *const bad[] = {
        "10.0.0.5",       "10.0.0.5:",       ":26379",        "10.0.0.5:0",   "10.0.0.5:65536",
        "10.0.0.5:+1",    "10.0.0.5:26379x", "fd00::5:26379", "[10.0.0.5]:1", "[]:26379",
        "[fd00::5]26379", "a b:1",           "a\tb:1",        "10.0.0.5:-1",  "x:99999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (wd_config_sentinel_split(bad[i], h, sizeof h, &port))
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(port, 0);
    }
    /* a host that does not fit the buffer */
    assert_false(wd_config_sentinel_split("averyveryverylonghostname:1", h, 8, &port));
}

static void sentinel_directives_parse_into_a_list_and_print_back(void **state)
{
    (void)state;
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c,
                           "redis_sentinel 10.0.0.5:26379 [fd00::5]:26380 s2:26379\n"
                           "redis_sentinel_master mymaster\n"
                           "redis_sentinel_username sent\n"
                           "redis_sentinel_password \"p w\"\n",
                           &errors),
                     WD_OK);
    assert_int_equal(c.nredis_sentinels, 3);
    assert_string_equal(c.redis_sentinels[1], "[fd00::5]:26380");
    assert_string_equal(c.redis_sentinel_master, "mymaster");
    assert_string_equal(c.redis_sentinel_password, "p w");
    assert_int_equal(wd_config_validate(&c, &errors), WD_OK);
    wd_config_cleanup(&c);
}

static void sentinel_words_are_checked_where_they_are_given(void **state)
{
    (void)state;
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c, "redis_sentinel\n", &errors), WD_ESYNTAX);
    assert_string_equal(errors, "t.conf:1: 'redis_sentinel' needs at least one HOST:PORT");
    free(errors);
    wd_config_cleanup(&c);
    assert_int_equal(parse(&c,
                           "\n"
                           "redis_sentinel 10.0.0.5 10.0.0.6:1 10.0.0.6:1\n"
                           "redis_sentinel_master \"my master\"\n",
                           &errors),
                     WD_ESYNTAX);
    assert_non_null(strstr(errors, "t.conf:2: 'redis_sentinel' expects HOST:PORT addresses "
                                   "(e.g. 10.0.0.5:26379 or [fd00::5]:26379), got '10.0.0.5'"));
    assert_non_null(strstr(errors, "t.conf:2: address '10.0.0.6:1' listed twice"));
    assert_non_null(strstr(errors, "t.conf:3: 'redis_sentinel_master' must be a Sentinel master "
                                   "name"));
    free(errors);
    wd_config_cleanup(&c);
    char many[1024] = "redis_sentinel";
    for (int i = 0; i < WD_CONFIG_SENTINELS_MAX + 1; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), " h%d:1", i);
    strcat(many, "\n");
    assert_int_equal(parse(&c, many, &errors), WD_ESYNTAX);
    assert_non_null(strstr(errors, "t.conf:1: 'redis_sentinel' takes at most 16 addresses"));
    free(errors);
    wd_config_cleanup(&c);
}

/* Every rule between the Sentinel directives and the others, reported in one pass with the
 * line of each directive involved. */
static void sentinel_rules_name_the_lines_in_one_pass(void **state)
{
    (void)state;
    struct wd_config c;
    char *errors = NULL;
    assert_int_equal(parse(&c,
                           "redis_host r\n"
                           "redis_port 6380\n"
                           "redis_sentinel s:26379\n"
                           "redis_sentinel_username u\n",
                           &errors),
                     WD_OK);
    assert_int_equal(wd_config_validate(&c, &errors), WD_EINVAL);
    assert_non_null(strstr(errors, "t.conf:3: redis_sentinel is set but redis_sentinel_master "
                                   "(the master's name) is not"));
    assert_non_null(strstr(errors, "t.conf:1: redis_host and redis_sentinel are both set "
                                   "(redis_sentinel: t.conf:3)"));
    assert_non_null(strstr(errors, "t.conf:2: redis_port and redis_sentinel are both set"));
    assert_non_null(strstr(errors, "t.conf:4: redis_sentinel_username needs "
                                   "redis_sentinel_password"));
    free(errors);
    wd_config_cleanup(&c);

    assert_int_equal(parse(&c,
                           "redis_sentinel_master m\n"
                           "redis_sentinel_password pw\n"
                           "redis_socket /run/redis.sock\n",
                           &errors),
                     WD_OK);
    assert_int_equal(wd_config_validate(&c, &errors), WD_EINVAL);
    assert_non_null(strstr(errors, "t.conf:1: redis_sentinel_master is set but redis_sentinel "
                                   "(the Sentinel addresses) is not"));
    assert_non_null(strstr(errors, "t.conf:2: redis_sentinel_password is set but "
                                   "redis_sentinel is not"));
    free(errors);
    wd_config_cleanup(&c);

    /* the data password is allowed with Sentinel alone */
    assert_int_equal(parse(&c,
                           "redis_sentinel [::1]:26379\n"
                           "redis_sentinel_master m\n"
                           "redis_password pw\n",
                           &errors),
                     WD_OK);
    assert_int_equal(wd_config_validate(&c, &errors), WD_OK);
    wd_config_cleanup(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_listen_on_loopback_with_the_auth_hooks),
        cmocka_unit_test(embedded_config_parses_and_validates),
        cmocka_unit_test(good_file_sets_every_kind_of_value),
        cmocka_unit_test(all_errors_are_reported_in_one_pass_with_file_and_line),
        cmocka_unit_test(repeated_single_valued_directive_is_an_error),
        cmocka_unit_test(duplicate_hook_and_bad_boolean_are_errors),
        cmocka_unit_test(wrong_argument_counts_are_errors),
        cmocka_unit_test(nul_byte_in_file_is_an_error),
        cmocka_unit_test(durations_need_units_and_reject_overflow),
        cmocka_unit_test(sizes_accept_binary_suffixes_and_reject_overflow),
        cmocka_unit_test(out_of_range_values_are_errors),
        cmocka_unit_test(command_line_set_uses_config_syntax),
        cmocka_unit_test(validate_checks_tls_pairs),
        cmocka_unit_test(print_shows_the_effective_values),
        cmocka_unit_test(printed_configuration_parses_back_to_the_same_values),
        cmocka_unit_test(store_directives_check_choices_repeat_claims_and_hide_secrets),
        cmocka_unit_test(request_limit_is_small_unless_a_hook_carries_packets),
        cmocka_unit_test(listen_is_loopback_only_for_literal_loopback_addresses),
        cmocka_unit_test(validate_refuses_the_demo_policy_on_a_non_loopback_listen),
        cmocka_unit_test(allow_core_dumps_is_off_unless_set),
        cmocka_unit_test(transport_is_h2_by_default_and_h2_is_accepted),
        cmocka_unit_test(transport_grpc_core_is_an_error_naming_the_line),
        cmocka_unit_test(prepost_loads_with_a_warning_per_line_and_is_not_printed),
        cmocka_unit_test(a_bad_listen_is_blamed_where_it_is_given),
        cmocka_unit_test(relative_paths_in_a_file_resolve_against_its_directory),
        cmocka_unit_test(decision_log_words_stay_words_and_files_resolve),
        cmocka_unit_test(printed_defaults_and_full_configuration_match_the_golden_files),
        cmocka_unit_test(choices_are_enums_read_through_the_table),
        cmocka_unit_test(every_directive_is_documented_with_its_default),
        cmocka_unit_test(cross_directive_errors_name_the_line_of_each_directive),
        cmocka_unit_test(cross_directive_rules_skip_a_directive_whose_line_was_refused),
        cmocka_unit_test(sentinel_addresses_split_host_and_port_and_refuse_the_rest),
        cmocka_unit_test(sentinel_directives_parse_into_a_list_and_print_back),
        cmocka_unit_test(sentinel_words_are_checked_where_they_are_given),
        cmocka_unit_test(sentinel_rules_name_the_lines_in_one_pass),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
