/* A minimal test harness: CHECK records a failure in a `checks` counter and continues; each test
 * binary's main exits non-zero when any check failed. */
#ifndef EMTP_CHECK_H
#define EMTP_CHECK_H
#include <stdio.h>

typedef struct checks {
    int run, failed;
} checks;

#define CHECK(c, cond)                                                                        \
    do {                                                                                      \
        (c)->run++;                                                                           \
        if (!(cond)) {                                                                        \
            (c)->failed++;                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
        }                                                                                     \
    } while (0)

#define CHECKF(c, cond, ...)                                                                  \
    do {                                                                                      \
        (c)->run++;                                                                           \
        if (!(cond)) {                                                                        \
            (c)->failed++;                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fprintf(stderr, "\n");                                                            \
        }                                                                                     \
    } while (0)

#endif
