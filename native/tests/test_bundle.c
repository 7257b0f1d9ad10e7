/* The LiteRT backend on a real tiny bundle ($EDGE_MTP_TEST_BUNDLE, e.g. an exported tiny-e2b), and
 * corrupted copies of it: every corruption gives an error code and a message, never a crash. Skipped
 * (exit 0 with a message) when the bundle or libLiteRt.so is not available. */
#include "check.h"
#include "edge_mtp.h"

#include <stdlib.h>
#include <string.h>

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)size;
    return buf;
}

static int spill(const char *path, const unsigned char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) || w != n ? -1 : 0;
}

static void test_generate(checks *c, const char *bundle) {
    emtp_backend b;
    emtp_error err = {0, ""};
    emtp_litert_options opts = {NULL, 2}; /* 2 threads: the CPU options' payload is owned and freed by LiteRT */
    int rc = emtp_litert_open(bundle, &opts, &b, &err);
    CHECKF(c, rc == 0, "%s", err.message);
    if (rc) return;
    CHECK(c, b.vocab_size > 0 && b.hidden_size > 0 && b.context > 0 && b.has_drafter && b.max_verify >= 1);
    int32_t prompt[12] = {150, 1833, 1546, 1120, 4026, 1758, 981, 1228, 1254, 3102, 3993, 3477};
    for (int i = 0; i < 12; i++) prompt[i] %= b.vocab_size;
    int32_t first[64];
    int n_first = 0;
    for (int k = 0; k < b.max_verify; k++) { /* K = 0 .. bundle K: the same greedy tokens */
        emtp_config cfg = {k, 24, 0, {0, 0, 0, 0}, EMTP_KV_HF, {0}};
        emtp_generation g;
        rc = emtp_generate(&b, prompt, 12, &cfg, &g, &err);
        CHECKF(c, rc == 0, "K=%d: %s", k, err.message);
        if (rc) continue;
        if (k == 0) {
            n_first = g.n_tokens;
            memcpy(first, g.tokens, sizeof(int32_t) * (size_t)g.n_tokens);
        } else {
            CHECKF(c, g.n_tokens == n_first && !memcmp(g.tokens, first, sizeof(int32_t) * (size_t)n_first), "K=%d", k);
        }
        emtp_generation_free(&g);
    }
    /* --draft-len auto with costs timed on the bundle (calibration) and with cheap given costs: K=0's tokens */
    for (int given = 0; given < 2; given++) {
        emtp_config cfg = {b.max_verify - 1, 24, 0, {0, 0, 0, 0}, EMTP_KV_HF, {0}};
        emtp_draft_policy_defaults(&cfg.policy);
        if (given) {
            CHECK(c, emtp_parse_draft_costs("0.1,0.1,1,1.1,1.2,1.3,1.4", &cfg.policy) == cfg.draft_len);
        } else {
            rc = emtp_calibrate(&b, cfg.draft_len, prompt[0], 2, &cfg.policy, &err);
            CHECKF(c, rc == 0 && cfg.policy.calibrated && cfg.policy.verify_ms[cfg.draft_len] > 0, "%s", err.message);
        }
        emtp_generation g;
        rc = emtp_generate(&b, prompt, 12, &cfg, &g, &err);
        CHECKF(c, rc == 0, "auto: %s", err.message);
        if (rc) continue;
        CHECK(c, g.n_tokens == n_first && !memcmp(g.tokens, first, sizeof(int32_t) * (size_t)n_first));
        CHECK(c, g.has_probes && g.rounds[1].n_rates == cfg.draft_len);
        emtp_generation_free(&g);
    }
    emtp_config sample = {b.max_verify - 1, 16, 1, {0.8, 0, 1.0, 7}, EMTP_KV_HF, {0}};
    emtp_generation g;
    rc = emtp_generate(&b, prompt, 12, &sample, &g, &err);
    CHECKF(c, rc == 0, "%s", err.message);
    if (!rc) emtp_generation_free(&g);
    int32_t too_long[200] = {0};
    rc = emtp_generate(&b, too_long, b.context + 1 < 200 ? b.context + 1 : 200, &sample, &g, &err);
    CHECK(c, rc == EMTP_EUSAGE);
    emtp_backend_destroy(&b);
}

static void expect_error(checks *c, const char *path, const char *what) {
    emtp_backend b;
    emtp_error err = {0, ""};
    int rc = emtp_litert_open(path, NULL, &b, &err);
    CHECKF(c, rc != 0 && err.message[0], "%s: opened", what);
    if (!rc) emtp_backend_destroy(&b);
}

static void test_corrupted(checks *c, const char *bundle, const char *dir) {
    size_t n = 0;
    unsigned char *orig = slurp(bundle, &n), *buf = malloc(n);
    CHECK(c, orig && buf && n > 65536);
    if (!orig || !buf || n <= 65536) {
        free(orig);
        free(buf);
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/corrupt.litertlm", dir);
    /* truncations: inside the magic, the header, a section, the last byte */
    size_t cuts[] = {0, 5, 31, 40, 1000, 20000, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        CHECK(c, spill(path, orig, cuts[i]) == 0);
        expect_error(c, path, "truncated");
    }
    memcpy(buf, orig, n);
    buf[0] = 'X';
    spill(path, buf, n);
    expect_error(c, path, "bad magic");
    memcpy(buf, orig, n);
    memset(buf + 24, 0xFF, 8);
    spill(path, buf, n);
    expect_error(c, path, "header end past the file");
    /* every byte of the flatbuffer header flipped in turn: the container parser must reject or accept it
     * safely (only the parse runs here; LiteRT is not given garbage models) */
    uint64_t header_end = 0;
    for (int i = 7; i >= 0; i--) header_end = header_end << 8 | orig[24 + i];
    int opened = 0, rejected = 0;
    spill(path, orig, n);
    for (size_t at = 32; at < header_end && at < 32 + 4096; at++) {
        unsigned char flipped = (unsigned char)(orig[at] ^ 0xA5);
        FILE *f = fopen(path, "r+b");
        CHECK(c, f && !fseek(f, (long)at, SEEK_SET) && fwrite(&flipped, 1, 1, f) == 1);
        if (f) fclose(f);
        emtp_bundle bd;
        emtp_error err;
        int rc = emtp_bundle_open(path, &bd, &err);
        if (rc) {
            rejected++;
            CHECK(c, rc == EMTP_EBUNDLE && err.message[0]);
        } else {
            opened++;
            emtp_manifest m;
            if (!emtp_bundle_manifest(&bd, &m, &err)) CHECK(c, m.vocab_size > 0);
            emtp_bundle_close(&bd);
        }
        f = fopen(path, "r+b");
        CHECK(c, f && !fseek(f, (long)at, SEEK_SET) && fwrite(orig + at, 1, 1, f) == 1);
        if (f) fclose(f);
    }
    printf("test_bundle: header byte flips: %d rejected, %d still parse\n", rejected, opened);
    /* the manifest section overwritten with garbage: an error about the manifest */
    emtp_bundle bd;
    emtp_error err;
    if (!emtp_bundle_open(bundle, &bd, &err)) {
        for (int i = 0; i < bd.n_sections; i++) {
            const emtp_section *s = &bd.sections[i];
            if (s->is_manifest) {
                memcpy(buf, orig, n);
                memset(buf + s->begin, '{', (size_t)(s->end - s->begin));
                spill(path, buf, n);
                expect_error(c, path, "garbage manifest");
            }
            if (!strcmp(s->kind, "tf_lite_mtp_drafter") || !strcmp(s->kind, "tf_lite_embedder")) {
                memcpy(buf, orig, n);
                memset(buf + s->begin, 0, (size_t)(s->end - s->begin)); /* a zeroed model section */
                spill(path, buf, n);
                expect_error(c, path, "zeroed model section");
            }
        }
        emtp_bundle_close(&bd);
    }
    expect_error(c, "/nonexistent/bundle.litertlm", "missing file");
    remove(path);
    free(orig);
    free(buf);
}

int main(void) {
    const char *bundle = getenv("EDGE_MTP_TEST_BUNDLE");
    if (!bundle || !*bundle) {
        printf("test_bundle: SKIPPED (set EDGE_MTP_TEST_BUNDLE to a tiny .litertlm bundle)\n");
        return 0;
    }
    const char *dir = getenv("EDGE_MTP_TEST_TMP");
    checks c = {0, 0};
    emtp_backend b;
    emtp_error err;
    if (emtp_litert_open(bundle, NULL, &b, &err) == EMTP_ELITERT && strstr(err.message, "cannot load")) {
        printf("test_bundle: SKIPPED (%s)\n", err.message);
        return 0;
    }
    emtp_backend_destroy(&b);
    test_generate(&c, bundle);
    test_corrupted(&c, bundle, dir && *dir ? dir : ".");
    printf("test_bundle: %d checks, %d failed\n", c.run, c.failed);
    return c.failed ? 1 : 0;
}
