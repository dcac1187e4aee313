# SPDX-License-Identifier: Apache-2.0
#
# warden: one non-recursive Makefile.
#
#   make                 build build/warden (release variant)
#   make run             install deps, build, run warden on its embedded defaults
#   make test            install deps, build, run every test suite
#   make deps            install the Debian packages the build and tests need (idempotent)
#   make VARIANT=asan    build/asan/warden with AddressSanitizer (also: debug, ubsan, tsan)
#   make tsan            the unit tests and the threaded integration scenarios under
#                        ThreadSanitizer (run by .ci/run after `make sanitize`)
#   make bench           build the benchmark tools (see bench/README.md); the only targets
#                        that link gRPC core (the reference server and the load generator)
#   make fuzz            install clang, build the libFuzzer targets (tests/fuzz/) and run each
#                        for FUZZ_SECONDS (default 60); `make fuzz FUZZ_SECONDS=10` is a short pass
#   make install         install the binary, man pages and examples under PREFIX (default
#                        /usr/local), staged under DESTDIR if set; `make uninstall` removes them
#   make help            list the targets and variables
#   make fuzz-ci         the CI pass: each target a fixed number of runs from its seeds, -seed=1
#
# Objects live under build/<variant>/, generated protobuf-c code under build/gen/ (never
# src/). Every library comes from pkg-config.

VARIANT ?= release
B       := build/$(VARIANT)
GEN     := build/gen
PYTHON  := /usr/bin/python3

CC      ?= gcc
PKGS    := libnghttp2 libprotobuf-c openssl libpcre2-8 libxcrypt libargon2 hiredis libjwt jansson libcurl libmicrohttpd
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ifneq ($(CI),)
WARN    += -Werror
endif
WERROR  ?=
ifeq ($(WERROR),1)
WARN    += -Werror
endif

ifeq ($(VARIANT),release)
OPT     := -O2 -g -DNDEBUG
else ifeq ($(VARIANT),debug)
OPT     := -O0 -g3
else ifeq ($(VARIANT),asan)
OPT     := -O1 -g -fsanitize=address -fno-omit-frame-pointer
LDSAN   := -fsanitize=address
else ifeq ($(VARIANT),ubsan)
OPT     := -O1 -g -fsanitize=undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=undefined
else ifeq ($(VARIANT),tsan)
# ThreadSanitizer (`make tsan`): gcc's, runtime libtsan2 (pulled in by gcc-12 through
# libgcc-12-dev); -O1 keeps the reports' stacks readable at a bearable speed
OPT     := -O1 -g -fsanitize=thread -fno-omit-frame-pointer
LDSAN   := -fsanitize=thread
else ifeq ($(VARIANT),fuzz)
# libFuzzer (`make fuzz`): everything built by clang with coverage instrumentation for the
# fuzzer (fuzzer-no-link), ASan and UBSan; only the tests/fuzz/ binaries link libFuzzer.
CC      := clang
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
           -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link
LDSAN   := -fsanitize=address,undefined
else
$(error unknown VARIANT '$(VARIANT)': use release, debug, asan, ubsan, tsan or fuzz)
endif

WD_VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CPPFLAGS   := -D_GNU_SOURCE -Isrc -I$(GEN) -DWD_VERSION='"$(WD_VERSION)"'
CFLAGS_ALL  = -std=c11 $(OPT) $(WARN) $(PKG_CFLAGS) -MMD -MP
LDLIBS      = $(PKG_LIBS) -lpthread $(LDSAN)

# gRPC core is not part of warden (removed in 0.2.0, README "Dependencies"): only the
# benchmark's reference server (bench/bare_server.c) and load generator (bench/wd_load.c)
# link it, as a C user without warden would
BENCH_GRPC_CFLAGS = $(shell pkg-config --cflags grpc 2>/dev/null)
BENCH_GRPC_LIBS   = $(shell pkg-config --libs grpc 2>/dev/null)

# ---- sources, by layer (includes point downward only: core <- store <- engine <- server) ----
CORE_SRC   := $(wildcard src/core/*.c)
POLICY_SRC := $(wildcard src/policy/*.c)
STORE_SRC  := $(wildcard src/store/*.c)
ENGINE_SRC := $(wildcard src/engine/*.c)
SERVER_SRC := $(wildcard src/server/*.c)
PROTOS     := exhook health
GEN_C      := $(PROTOS:%=$(GEN)/%.pb-c.c)
GEN_H      := $(PROTOS:%=$(GEN)/%.pb-c.h)
GEN_PY     := $(PROTOS:%=$(GEN)/py/%_pb2.py)

obj = $(patsubst %.c,$(B)/%.o,$(1))
CORE_OBJ   := $(call obj,$(CORE_SRC))
POLICY_OBJ := $(call obj,$(POLICY_SRC))
STORE_OBJ  := $(call obj,$(STORE_SRC))
ENGINE_OBJ := $(call obj,$(ENGINE_SRC))
SERVER_OBJ := $(call obj,$(SERVER_SRC))
GEN_OBJ    := $(PROTOS:%=$(B)/gen/%.pb-c.o)
MAIN_OBJ   := $(B)/src/main.o $(B)/src/tools.o
ALL_OBJ    := $(CORE_OBJ) $(POLICY_OBJ) $(STORE_OBJ) $(ENGINE_OBJ) $(SERVER_OBJ) $(GEN_OBJ) $(MAIN_OBJ)

LIB_CORE   := $(B)/libwd_core.a
LIB_POLICY := $(B)/libwd_policy.a
LIB_STORE  := $(B)/libwd_store.a
LIB_ENGINE := $(B)/libwd_engine.a
LIB_SERVER := $(B)/libwd_server.a
# link order: highest layer first
LIBS_ALL   := $(LIB_SERVER) $(LIB_ENGINE) $(LIB_STORE) $(LIB_POLICY) $(LIB_CORE)

BIN        := $(B)/warden

# quiet by default; `make V=1` shows the commands
ifeq ($(V),1)
Q :=
else
Q := @
endif

# ---- unit tests: tests/unit/test_<module>.c, linked against its layer and those below ----
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))

.SECONDARY: $(GEN_C) $(GEN_H) $(GEN_PY)
.PHONY: all deps run test unit policy-tests integration integration-h2 sanitize tsan bench clean \
        format-check lint fuzz fuzz-deps fuzz-build install uninstall help packaging-tests fuzz-ci
.DEFAULT_GOAL := all

ifeq ($(VARIANT),release)
all: build/warden
build/warden: $(BIN)
	@# copy then rename: works while an old build/warden is running
	$(Q)cp $< $@.tmp && mv -f $@.tmp $@
else
all: $(BIN)
endif

$(BIN): $(MAIN_OBJ) $(LIBS_ALL)
	@echo "  LD      $@"
	$(Q)$(CC) $(OPT) -o $@ $(MAIN_OBJ) $(LIBS_ALL) $(LDLIBS)

$(LIB_CORE): $(CORE_OBJ)
$(LIB_POLICY): $(POLICY_OBJ)
$(LIB_STORE): $(STORE_OBJ)
$(LIB_ENGINE): $(ENGINE_OBJ)
$(LIB_SERVER): $(SERVER_OBJ) $(GEN_OBJ)
$(B)/libwd_%.a:
	@mkdir -p $(@D)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(B)/src/main.o: VERSION
$(B)/src/%.o: src/%.c | $(GEN_H)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS_ALL) -c -o $@ $<

# generated code: compiled without the strict warning set (not ours to fix)
$(B)/gen/%.pb-c.o: $(GEN)/%.pb-c.c $(GEN)/%.pb-c.h
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) -std=c11 $(OPT) $(PKG_CFLAGS) -w -c -o $@ $<

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	protoc-c --proto_path=proto --c_out=$(GEN) $<

$(GEN)/py/%_pb2.py: proto/%.proto
	@mkdir -p $(GEN)/py
	protoc --proto_path=proto --python_out=$(GEN)/py $<

# unit test binaries: link only their layer (and below) plus cmocka
$(B)/tests/test_%: tests/unit/test_%.c $(LIBS_ALL)
	@mkdir -p $(@D)
	@echo "  CC/LD   $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS_ALL) $(shell pkg-config --cflags cmocka) -o $@ $< \
	    $(LIBS_ALL) $(shell pkg-config --libs cmocka) $(LDLIBS)

# ---- installing ----
# `make install PREFIX=/usr DESTDIR=/tmp/stage` stages a package tree. The systemd unit and
# deploy/warden.conf name /usr/local/bin/warden (the default PREFIX) and /etc/warden; the
# examples go to the doc directory, never over a configuration in /etc.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/warden
INSTALL ?= install
MAN_PAGES := man/warden.8 man/warden.conf.5 man/warden.policy.5
EXAMPLES  := deploy/warden.conf deploy/warden.policy deploy/warden.service \
             deploy/emqx-exhook.conf $(wildcard policies/*.policy policies/*.tests)

install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 0755 build/warden $(DESTDIR)$(BINDIR)/warden
	$(INSTALL) -m 0644 man/warden.8 $(DESTDIR)$(MANDIR)/man8/warden.8
	$(INSTALL) -m 0644 man/warden.conf.5 man/warden.policy.5 $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 0644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/warden $(DESTDIR)$(MANDIR)/man8/warden.8 \
	    $(DESTDIR)$(MANDIR)/man5/warden.conf.5 $(DESTDIR)$(MANDIR)/man5/warden.policy.5
	rm -rf $(DESTDIR)$(DOCDIR)

help:
	@echo "targets:"
	@echo "  all (default)    build build/warden (VARIANT=release|debug|asan|ubsan|tsan)"
	@echo "  deps             install the Debian packages the build and tests need"
	@echo "  run              deps, build, run warden on its embedded defaults"
	@echo "  test             deps, build, lint, format-check and every test suite"
	@echo "  unit | policy-tests | integration | packaging-tests"
	@echo "                   one suite"
	@echo "  sanitize         every suite under ASan and UBSan"
	@echo "  tsan             unit tests and the threaded integration scenarios under TSan"
	@echo "  install          binary, man pages, examples (PREFIX=$(PREFIX), DESTDIR=)"
	@echo "  uninstall        remove what install put there"
	@echo "  bench | fuzz     benchmarks (bench/README.md); libFuzzer targets (FUZZ_SECONDS=60)"
	@echo "  fuzz-ci          the CI fuzz pass: fixed runs, -seed=1 (run by .ci/run)"
	@echo "  lint | format-check | clean"
	@echo "variables: VARIANT CI=true (-Werror) V=1 (show commands) PREFIX DESTDIR"

# ---- set-up ----
# Debian 12 packages for build, tests and benchmarks. `make deps` installs only what is
# missing, so it is quick and idempotent; apt runs as root, through sudo otherwise.
# libgrpc-dev is here only for `make bench` (bench/bare_server.c, bench/wd_load.c); warden
# itself does not link gRPC core. nghttp2-client: h2load and nghttp, independent HTTP/2
# clients that the integration tests drive warden with.
DEBIAN_PKGS := gcc make pkg-config libgrpc-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler \
    protobuf-compiler libssl-dev openssl libcmocka-dev libpcre2-dev python3 python3-grpcio python3-protobuf \
    nghttp2-client procps iproute2 libcrypt-dev libargon2-dev libhiredis-dev libjwt-dev libjansson-dev libcurl4-openssl-dev \
    libmicrohttpd-dev \
    redis-server cppcheck clang-format shellcheck systemd man-db groff-base python3-yaml

deps:
	@missing=$$(for p in $(DEBIAN_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing:" $$missing; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "make deps: all Debian packages present"; fi

run: deps
	@$(MAKE) --no-print-directory all
	./build/warden

# ---- tests ----
unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

policy-tests: all
	tests/policy/run.sh

# Containerfile package lists against the Makefile's pkg-config modules and `ldd build/warden`,
# `make install DESTDIR=...`, man pages render, `systemd-analyze verify` of the unit,
# deploy/kubernetes.yaml against `warden --check-config` and itself (python3-yaml)
packaging-tests: all
	$(PYTHON) tests/packaging/check.py --warden build/warden

integration: all $(GEN_PY)
	$(PYTHON) tests/integration/run.py --warden build/warden --gen $(GEN)/py

# the name from when there were two transports (gRPC core went in 0.2.0): the same suite
integration-h2: integration

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory policy-tests
	@$(MAKE) --no-print-directory packaging-tests
	@$(MAKE) --no-print-directory integration

# Every suite (unit, golden policy cases, integration) against the ASan (+LeakSanitizer) and
# the UBSan build (-fno-sanitize-recover: a finding aborts, so the suite fails). Run by
# .ci/run after `make test`.
SAN_VARIANTS := asan ubsan
sanitize: deps $(GEN_PY)
	@set -e; for v in $(SAN_VARIANTS); do \
	  echo "== sanitize: $$v"; \
	  $(MAKE) --no-print-directory VARIANT=$$v all; \
	  $(MAKE) --no-print-directory VARIANT=$$v unit; \
	  WARDEN=build/$$v/warden tests/policy/run.sh; \
	  $(PYTHON) tests/integration/run.py --warden build/$$v/warden --gen $(GEN)/py; \
	done

# ThreadSanitizer (docs/reliability.md "Sanitizers"): every unit test (the threaded modules'
# tests run their storms: cache, engine reload, backends' sessions, hashpool, loop, jwks,
# passwd), then the integration scenarios that drive warden's threads through the real daemon
# (TSAN_IT, `--only` substrings): workers, acceptor and its per-peer limits, hash pool, policy
# watcher and reloads, admin socket, JWKS refresher, metrics endpoint, decision log writer,
# shared sessions, cache invalidation, stop under load. A report is fatal:
# halt_on_error makes the process exit 66 (a unit test fails), and run.py fails a scenario
# whose warden printed one (tests/integration/harness.py SanitizerWatch). Run by .ci/run
# after `make sanitize`; about a minute and a half on the 2-core machine.
TSAN_IT := threads concurrency reload_under_load sigterm stores_cache stores_jwt_sessions \
    stores_redis_reconnect stores_shutdown_grace stores_jwt_jwks_url_rotation \
    sec_stores_watch_half_written_policy sec_superuser_sessions transport_h2load \
    transport_deadlines_and_budget transport_fd_exhaustion h2_async h2tls_mtls \
    h2_attacks_rapid_reset h2_attacks_per_peer h2_attacks_idle_many h2_attacks_fd_exhaustion \
    faults_policy_broken_and_fixed faults_clients_vanish_while_calls_wait \
    observe_metrics_move_with_calls observe_decision_log sessions_shared cache_tracking
TSAN_OPTIONS_CI := halt_on_error=1 exitcode=66 second_deadlock_stack=1 \
    suppressions=$(CURDIR)/tests/tsan.supp
tsan: deps $(GEN_PY)
	@echo "== tsan: build"
	@$(MAKE) --no-print-directory VARIANT=tsan all
	@echo "== tsan: unit"
	@TSAN_OPTIONS="$(TSAN_OPTIONS_CI)" $(MAKE) --no-print-directory VARIANT=tsan unit
	@echo "== tsan: integration ($(words $(TSAN_IT)) selections)"
	TSAN_OPTIONS="$(TSAN_OPTIONS_CI)" $(PYTHON) tests/integration/run.py \
	    --warden build/tsan/warden --gen $(GEN)/py $(TSAN_IT:%=--only %)

# ---- benchmarks (bench/README.md) ----
BENCH_BIN := $(B)/bench/wd_load $(B)/bench/bare_server $(B)/bench/bare_h2 $(B)/bench/policy_bench
bench: all $(BENCH_BIN) $(GEN_PY)

# the in-process policy benchmark links the policy layer, not gRPC
$(B)/bench/policy_bench: bench/policy_bench.c $(LIB_POLICY) $(LIB_CORE)
	@mkdir -p $(@D)
	@echo "  CC/LD   $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS_ALL) -o $@ $< $(LIB_POLICY) $(LIB_CORE) $(LDLIBS) -lm

# warden's own transport with do-nothing handlers: bare_h2.c implements server/hook.h, so
# the linker takes h2server/h2/loop from libwd_server.a and never pulls hook.o or the engine
$(B)/bench/bare_h2: bench/bare_h2.c $(LIBS_ALL)
	@mkdir -p $(@D)
	@echo "  CC/LD   $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS_ALL) -o $@ $< $(LIBS_ALL) $(LDLIBS)

# bare_server and wd_load: gRPC core programs (BENCH_GRPC_*)
$(B)/bench/%: bench/%.c $(GEN_OBJ)
	@mkdir -p $(@D)
	@echo "  CC/LD   $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS_ALL) $(BENCH_GRPC_CFLAGS) -o $@ $< $(GEN_OBJ) \
	    $(BENCH_GRPC_LIBS) $(LDLIBS) -lm

# ---- fuzzing (docs/reliability.md "Fuzzing") ----
# Each tests/fuzz/fuzz_<name>.c is one libFuzzer target, run from its seed corpus
# tests/fuzz/corpus/<name>/ (new inputs it finds go to build/fuzz/corpus/<name>/, never into
# the repo) with tests/fuzz/<name>.dict when there is one. A crash, leak or sanitizer
# finding stops `make fuzz` with the reproducer in build/fuzz/artifacts/.
FUZZ_SECONDS ?= 60
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_BIN     := $(FUZZ_NAMES:%=build/fuzz/fuzz/fuzz_%)
# clang and libFuzzer's runtime (libclang_rt.fuzzer-x86_64.a is in libclang-rt-14-dev); not
# part of DEBIAN_PKGS so that `make deps` / `make test` do not install them
FUZZ_DEBIAN_PKGS := clang libclang-rt-14-dev

fuzz-deps:
	@$(MAKE) --no-print-directory deps DEBIAN_PKGS="$(DEBIAN_PKGS) $(FUZZ_DEBIAN_PKGS)"

fuzz-build: $(GEN_H)
	@$(MAKE) --no-print-directory VARIANT=fuzz $(FUZZ_BIN)

fuzz: fuzz-deps
	@$(MAKE) --no-print-directory fuzz-build
	@set -e; for n in $(FUZZ_NAMES); do \
	  echo "== fuzz: $$n ($(FUZZ_SECONDS) s)"; \
	  mkdir -p build/fuzz/corpus/$$n build/fuzz/artifacts/$$n; \
	  dict=; [ -f tests/fuzz/$$n.dict ] && dict=-dict=tests/fuzz/$$n.dict; \
	  build/fuzz/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	      -artifact_prefix=build/fuzz/artifacts/$$n/ $$dict \
	      build/fuzz/corpus/$$n tests/fuzz/corpus/$$n 2>build/fuzz/$$n.log || \
	    { tail -n 60 build/fuzz/$$n.log; echo "fuzz: $$n FAILED (log build/fuzz/$$n.log)"; exit 1; }; \
	  grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec' \
	      build/fuzz/$$n.log | sed 's/^/   /'; \
	done

# The CI pass (`make fuzz-ci`, run by .ci/run): every target for a fixed number of runs with
# a fixed -seed, from its seed corpus only (a scratch corpus emptied first), so the same
# commit always fuzzes the same inputs: a landing is never blocked by a random finding, and
# a finding (crash, leak, sanitizer report, broken invariant, an input over 25 s) still
# fails. Runs per target are sized to about 10 to 20 s each on the 2-core machine
# (docs/reliability.md); FUZZ_CI_RUNS_<name> overrides one, FUZZ_CI_SEED the seed.
FUZZ_CI_SEED          ?= 1
FUZZ_CI_RUNS          ?= 200000
FUZZ_CI_RUNS_config   ?= 60000
FUZZ_CI_RUNS_emqx_acl ?= 1000000
FUZZ_CI_RUNS_erlterm  ?= 60000
FUZZ_CI_RUNS_h2       ?= 250000
FUZZ_CI_RUNS_hook     ?= 1500000
FUZZ_CI_RUNS_import   ?= 60000
FUZZ_CI_RUNS_jwt      ?= 300000
FUZZ_CI_RUNS_policy   ?= 15000
FUZZ_CI_RUNS_session_rec ?= 150000
FUZZ_CI_RUNS_topic    ?= 200000

# one target's CI run, $(1) its name
fuzz_ci_one = echo "== fuzz-ci: $(1) ($(fuzz_ci_runs) runs, -seed=$(FUZZ_CI_SEED))"; \
	rm -rf build/fuzz/ci/$(1); mkdir -p build/fuzz/ci/$(1) build/fuzz/artifacts/$(1); \
	build/fuzz/fuzz/fuzz_$(1) -runs=$(fuzz_ci_runs) -seed=$(FUZZ_CI_SEED) -reduce_inputs=0 -timeout=25 \
	    -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/$(1)/ \
	    $(if $(wildcard tests/fuzz/$(1).dict),-dict=tests/fuzz/$(1).dict) \
	    build/fuzz/ci/$(1) tests/fuzz/corpus/$(1) 2>build/fuzz/ci-$(1).log || \
	  { tail -n 60 build/fuzz/ci-$(1).log; echo "fuzz-ci: $(1) FAILED (log build/fuzz/ci-$(1).log," \
	    "reproducer in build/fuzz/artifacts/$(1)/)"; exit 1; }; \
	grep -E '^\#[0-9]+.*DONE|stat::average_exec_per_sec' build/fuzz/ci-$(1).log | sed 's/^/   /'
fuzz_ci_runs = $(or $(FUZZ_CI_RUNS_$(1)),$(FUZZ_CI_RUNS))

fuzz-ci: fuzz-deps
	@$(MAKE) --no-print-directory fuzz-build
	@set -e; $(foreach n,$(FUZZ_NAMES),$(call fuzz_ci_one,$(n));)

ifeq ($(VARIANT),fuzz)
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(LIBS_ALL)
	@mkdir -p $(@D)
	@echo "  CC/LD   $@"
	$(Q)$(CC) $(CPPFLAGS) -Itests/fuzz $(CFLAGS_ALL) -fsanitize=fuzzer -o $@ $< $(LIBS_ALL) \
	    $(LDLIBS)
endif

# ---- hygiene ----
format-check:
	$(Q)clang-format --dry-run --Werror $(CORE_SRC) $(POLICY_SRC) $(STORE_SRC) $(ENGINE_SRC) \
	    $(SERVER_SRC) src/main.c $(wildcard src/*/*.h)

lint:
	@! grep -nE '\b(atoi|sprintf|strcpy|strcat|strtok|gets)\s*\(' src/*.c src/*/*.c || \
	    { echo "lint: banned function (see CONVENTIONS)"; exit 1; }
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability -Isrc src
	shellcheck -x -S warning .ci/run certs/gen.sh tests/policy/run.sh bench/*.sh

clean:
	rm -rf build

-include $(ALL_OBJ:.o=.d) $(UNIT_BIN:=.d)
