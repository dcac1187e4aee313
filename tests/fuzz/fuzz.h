/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz.h: what the libFuzzer targets in tests/fuzz/ share. Each target defines
 * LLVMFuzzerTestOneInput (and LLVMFuzzerInitialize when it sets up once), is built by
 * `make fuzz` with clang -fsanitize=fuzzer,address,undefined against the project's objects
 * built the same way (build/fuzz/), and checks invariants with FUZZ_CHECK: a broken one
 * prints what failed and aborts, which libFuzzer reports as a crash with the input saved.
 */
#ifndef WD_FUZZ_H
#define WD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant broken: %s (%s:%d): ", #cond, __FILE__, __LINE__);     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A NUL-terminated malloc'd copy of the input (which libFuzzer does not terminate). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
