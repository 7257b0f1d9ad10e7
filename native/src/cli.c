/* edge-mtp-native BUNDLE --prompt-ids 1,2,3 [--draft-len K|auto] [--draft-costs F,D,V1,..] [--max-new-tokens N]
 * [--temperature T --top-k K --top-p P --seed S] [--kv-view hf|clean] [--trace FILE] [--json] [--litert-lib PATH]
 *
 * The same flags and meaning as `edge-mtp run BUNDLE` (src/edge_mtp/cli.py). Prints the generated ids
 * and the summary line (or --json), then a timing line; user errors are one line on stderr and exit 2,
 * LiteRT or internal failures exit 3. */
#include "edge_mtp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 2;
}

static int parse_long(const char *s, long long lo, long long hi, long long *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi) return -1;
    *v = x;
    return 0;
}

static int parse_double(const char *s, double *v) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end) return -1;
    *v = x;
    return 0;
}

static int parse_ids(const char *text, int32_t **ids, int *n) {
    size_t len = strlen(text);
    *ids = malloc(sizeof(int32_t) * (len / 2 + 2));
    *n = 0;
    if (!*ids) return -1;
    const char *s = text;
    while (*s) {
        while (*s == ' ' || *s == ',') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end == s || v < INT32_MIN || v > INT32_MAX) return -1;
        while (*end == ' ') end++;
        if (*end && *end != ',') return -1;
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
    return 0;
}

static void print_summary_line(const emtp_generation *g, int draft_len) {
    int drafted, accepted;
    double mean, *slots = malloc(sizeof(double) * (size_t)(draft_len + 1));
    if (!slots) return;
    emtp_summary(g, draft_len, &drafted, &accepted, slots, &mean);
    printf("tokens %d | rounds %d | acceptance per draft slot [", g->n_tokens, g->n_rounds);
    for (int k = 0; k < draft_len; k++) printf(k ? ", %.2f" : "%.2f", slots[k]);
    if (!draft_len) printf("-");
    printf("] | mean tokens/round %.2f | stop %s\n", mean, g->stop);
    free(slots);
}

static void print_timing(const emtp_generation *g, FILE *f) {
    double loop = 0, graph = 0, loop0 = 0, graph0 = 0;
    for (int i = 0; i < g->n_rounds; i++) {
        const emtp_round *r = &g->rounds[i];
        double total = r->ms_verify + (r->has_draft_ms ? r->ms_draft : 0);
        if (i == 0) {
            loop0 = total;
            graph0 = r->ms_graph;
        } else {
            loop += total;
            graph += r->ms_graph;
        }
    }
    int decode_rounds = g->n_rounds - 1;
    fprintf(f, "timing: prefill %.3f ms (graph %.3f) | decode rounds %d: %.3f ms (graph %.3f, loop overhead %.3f ms "
            "= %.4f ms/round)\n", loop0, graph0, decode_rounds, loop, graph, loop - graph,
            decode_rounds ? (loop - graph) / decode_rounds : 0.0);
}

int main(int argc, char **argv) {
    const char *bundle = NULL, *trace = NULL, *prompt_text = NULL, *kv_view = "hf", *lib = NULL, *costs = NULL;
    long long draft_len = -1, max_new = 64, top_k = 0, seed = 0, threads = 2;
    int draft_auto = 0;
    double temperature = 0.0, top_p = 1.0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: edge-mtp-native BUNDLE --prompt-ids IDS [--draft-len K|auto] [--draft-costs F,D,V1,...]\n"
                   "       [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
                   "       [--kv-view hf|clean] [--trace FILE] [--json] [--litert-lib PATH] [--threads N]\n"
                   "--threads: CPU threads of LiteRT (default 2, as the Python backends; 0: LiteRT's own default)\n"
                   "--draft-len auto: K per round from the costs (ms: a round's first drafter step, each further\n"
                   "step, a verify of 1..K+1 tokens; default: timed on the bundle first) and the running acceptance\n");
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
            takes = 0;
        } else if (a[0] == '-' && a[1] == '-' && !v) {
            return usage_error("argument %s: expected one argument", a);
        } else if (!strcmp(a, "--prompt-ids")) {
            prompt_text = v;
        } else if (!strcmp(a, "--prompt")) {
            return usage_error("%s", "--prompt needs a tokenizer; the native CLI takes --prompt-ids only");
        } else if (!strcmp(a, "--draft-len")) {
            draft_auto = !strcmp(v, "auto");
            if (!draft_auto && parse_long(v, 0, 64, &draft_len))
                return usage_error("--draft-len: expected auto or an integer in 0..64, got %s", v);
        } else if (!strcmp(a, "--draft-costs")) {
            costs = v;
        } else if (!strcmp(a, "--max-new-tokens")) {
            if (parse_long(v, -1000000000LL, 1000000000LL, &max_new)) return usage_error("--max-new-tokens: expected an integer, got %s", v);
        } else if (!strcmp(a, "--temperature")) {
            if (parse_double(v, &temperature)) return usage_error("--temperature: expected a number, got %s", v);
        } else if (!strcmp(a, "--top-k")) {
            if (parse_long(v, 0, 1000000000LL, &top_k)) return usage_error("--top-k: expected a non-negative integer, got %s", v);
        } else if (!strcmp(a, "--top-p")) {
            if (parse_double(v, &top_p)) return usage_error("--top-p: expected a number, got %s", v);
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') return usage_error("--seed: expected a non-negative integer, got %s", v);
            seed = (long long)s;
        } else if (!strcmp(a, "--kv-view")) {
            if (strcmp(v, "hf") && strcmp(v, "clean")) return usage_error("--kv-view: expected hf or clean, got %s", v);
            kv_view = v;
        } else if (!strcmp(a, "--trace")) {
            trace = v;
        } else if (!strcmp(a, "--litert-lib")) {
            lib = v;
        } else if (!strcmp(a, "--threads")) {
            if (parse_long(v, 0, 1024, &threads)) return usage_error("--threads: expected an integer in 0..1024, got %s", v);
        } else if (a[0] == '-') {
            return usage_error("unrecognized argument %s", a);
        } else if (!bundle) {
            bundle = a;
            takes = 0;
        } else {
            return usage_error("unexpected argument %s", a);
        }
        i += takes;
    }
    if (!bundle) return usage_error("%s", "give a BUNDLE (.litertlm)");
    if (!prompt_text) return usage_error("%s", "--prompt-ids is required");
    if (temperature < 0 || !(top_p > 0 && top_p <= 1))
        return usage_error("%s", "--temperature must be >= 0 and --top-p in (0, 1]");
    emtp_draft_policy policy;
    memset(&policy, 0, sizeof policy);
    int costs_k = -1;
    if (costs) {
        if (!draft_auto) return usage_error("%s", "--draft-costs applies to --draft-len auto only");
        emtp_draft_policy_defaults(&policy);
        costs_k = emtp_parse_draft_costs(costs, &policy);
        if (costs_k < 0)
            return usage_error("--draft-costs: expected F,D,V1,...,V(K+1) (ms, each > 0: a round's first drafter "
                               "step, each further step, a verify of 1..K+1 tokens), got '%s'", costs);
    }
    int32_t *prompt = NULL;
    int n_prompt = 0;
    if (parse_ids(prompt_text, &prompt, &n_prompt)) {
        free(prompt);
        return usage_error("--prompt-ids: expected comma-separated token ids, got '%s'", prompt_text);
    }
    emtp_error err = {0, ""};
    emtp_backend backend;
    emtp_litert_options opts = {lib, (int)threads};
    int rc = emtp_litert_open(bundle, &opts, &backend, &err);
    emtp_generation gen;
    memset(&gen, 0, sizeof gen);
    emtp_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (!rc) {
        cfg.draft_len = draft_len >= 0 ? (int)draft_len : backend.default_draft_len;
        if (draft_auto) {
            if (costs_k >= 0) {
                cfg.policy = policy;
                cfg.draft_len = costs_k; /* the costs say how deep a round may draft */
            } else {
                emtp_draft_policy_defaults(&cfg.policy);
            }
        }
        cfg.max_new_tokens = (int)max_new;
        cfg.kv_view = strcmp(kv_view, "clean") ? EMTP_KV_HF : EMTP_KV_CLEAN;
        if (temperature > 0) {
            cfg.sample = 1;
            cfg.sampling.temperature = temperature;
            cfg.sampling.top_k = (int)top_k;
            cfg.sampling.top_p = top_p;
            cfg.sampling.seed = (uint64_t)seed;
        }
        if (n_prompt == 0) rc = emtp_fail(&err, EMTP_EUSAGE, "the prompt is empty; give at least one token id");
        for (int i = 0; i < n_prompt && !rc; i++)
            if (prompt[i] < 0 || prompt[i] >= backend.vocab_size)
                rc = emtp_fail(&err, EMTP_EUSAGE, "--prompt-ids: id %d is outside the vocabulary of %d", (int)prompt[i],
                               backend.vocab_size);
        if (!rc && draft_auto && costs_k < 0)
            rc = emtp_calibrate(&backend, cfg.draft_len, prompt[0], 3, &cfg.policy, &err);
        if (!rc) rc = emtp_generate(&backend, prompt, n_prompt, &cfg, &gen, &err);
        if (!rc && trace) rc = emtp_write_trace_file(trace, &gen, &cfg, backend.name, backend.model_id, &err);
        if (!rc) {
            if (json) {
                printf("{\"prompt_ids\":[");
                for (int i = 0; i < n_prompt; i++) printf(i ? ",%d" : "%d", (int)prompt[i]);
                printf("],\"tokens\":[");
                for (int i = 0; i < gen.n_tokens; i++) printf(i ? ",%d" : "%d", (int)gen.tokens[i]);
                printf("],\"text\":null,\"summary\":");
                rc = emtp_write_summary(stdout, &gen, cfg.draft_len, &err);
                printf("}\n");
                print_timing(&gen, stderr);
            } else {
                for (int i = 0; i < gen.n_tokens; i++) printf(i ? ",%d" : "%d", (int)gen.tokens[i]);
                printf("\n");
                print_summary_line(&gen, cfg.draft_len);
                print_timing(&gen, stdout);
            }
        }
        emtp_generation_free(&gen);
        emtp_backend_destroy(&backend);
    }
    free(prompt);
    if (rc) {
        fprintf(stderr, "error: %s\n", err.message);
        return rc == EMTP_EUSAGE || rc == EMTP_EBUNDLE || rc == EMTP_EIO ? 2 : 3;
    }
    fflush(stdout);
    return 0;
}
