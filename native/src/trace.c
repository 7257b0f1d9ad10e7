/* Step traces, format edge-mtp-trace/1 (docs/trace.md), written byte-compatible with
 * runtime/trace.py's json.dumps(separators=(",", ":")) apart from timings. */
#include "edge_mtp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void emtp_format_double(double v, char *buf, size_t size) {
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    if (v == 0) {
        snprintf(buf, size, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    char sci[40];
    int p;
    for (p = 1; p <= 17; p++) { /* shortest digits that read back as v */
        snprintf(sci, sizeof sci, "%.*e", p - 1, v);
        if (strtod(sci, NULL) == v) break;
    }
    /* sci = [-]d[.ddd]e[+-]xx -> digits and decimal exponent */
    char digits[24];
    int nd = 0, neg = sci[0] == '-';
    const char *s = sci + neg;
    for (; *s && *s != 'e'; s++)
        if (*s != '.') digits[nd++] = *s;
    digits[nd] = 0;
    int exp10 = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
    char out[64];
    int o = 0;
    if (neg) out[o++] = '-';
    if (exp10 >= -4 && exp10 < 16) { /* Python repr: fixed notation */
        if (exp10 < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -exp10 - 1; i++) out[o++] = '0';
            for (int i = 0; i < nd; i++) out[o++] = digits[i];
        } else {
            for (int i = 0; i <= exp10; i++) out[o++] = i < nd ? digits[i] : '0';
            out[o++] = '.';
            if (nd > exp10 + 1)
                for (int i = exp10 + 1; i < nd; i++) out[o++] = digits[i];
            else
                out[o++] = '0';
        }
        out[o] = 0;
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = digits[i];
        }
        snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
    snprintf(buf, size, "%s", out);
}

static void put_double(FILE *f, double v) {
    char buf[64];
    emtp_format_double(v, buf, sizeof buf);
    fputs(buf, f);
}

static void put_ids(FILE *f, const int32_t *ids, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, i ? ",%d" : "%d", (int)ids[i]);
    fputc(']', f);
}

static void put_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void emtp_summary(const emtp_generation *g, int draft_len, int *drafted, int *accepted, double *per_slot,
                  double *mean_emitted) {
    *drafted = *accepted = 0;
    for (int i = 0; i < g->n_rounds; i++)
        if (g->rounds[i].n_drafts) {
            *drafted += g->rounds[i].n_drafts;
            *accepted += g->rounds[i].accepted;
        }
    for (int k = 0; k < draft_len; k++) {
        int offered = 0, kept = 0;
        for (int i = 0; i < g->n_rounds; i++)
            if (g->rounds[i].n_drafts > k) {
                offered++;
                kept += g->rounds[i].accepted > k;
            }
        per_slot[k] = offered ? (double)kept / (double)offered : 0.0;
    }
    int emitted = 0;
    for (int i = 1; i < g->n_rounds; i++) emitted += g->rounds[i].n_emitted;
    *mean_emitted = g->n_rounds > 1 ? (double)emitted / (double)(g->n_rounds - 1) : 0.0;
}

int emtp_write_summary(FILE *f, const emtp_generation *g, int draft_len, emtp_error *err) {
    int drafted, accepted;
    double mean, *per_slot = malloc(sizeof(double) * (size_t)(draft_len + 1));
    if (!per_slot) return emtp_fail(err, EMTP_ENOMEM, "out of memory (summary)");
    emtp_summary(g, draft_len, &drafted, &accepted, per_slot, &mean);
    fputs("{\"type\":\"summary\",\"tokens\":", f);
    put_ids(f, g->tokens, g->n_tokens);
    fprintf(f, ",\"rounds\":%d,\"drafted\":%d,\"accepted\":%d,\"accepted_per_position\":[", g->n_rounds, drafted,
            accepted);
    for (int k = 0; k < draft_len; k++) {
        if (k) fputc(',', f);
        put_double(f, per_slot[k]);
    }
    free(per_slot);
    fputs("],\"mean_emitted_per_round\":", f);
    put_double(f, mean);
    fputs(",\"stop\":", f);
    put_string(f, g->stop ? g->stop : "");
    fputc('}', f);
    return EMTP_OK;
}

int emtp_write_trace(FILE *f, const emtp_generation *g, const emtp_config *cfg, const char *implementation,
                     const char *model, emtp_error *err) {
    fputs("{\"type\":\"header\",\"format\":\"edge-mtp-trace/1\",\"implementation\":", f);
    put_string(f, implementation);
    fputs(",\"model\":", f);
    put_string(f, model);
    fputs(",\"prompt_ids\":", f);
    put_ids(f, g->prompt, g->n_prompt);
    fprintf(f, ",\"draft_len\":%d,\"max_new_tokens\":%d,\"sampling\":", cfg->draft_len, cfg->max_new_tokens);
    if (cfg->sample) {
        fputs("{\"mode\":\"sample\",\"temperature\":", f);
        put_double(f, cfg->sampling.temperature);
        fprintf(f, ",\"top_k\":%d,\"top_p\":", cfg->sampling.top_k);
        put_double(f, cfg->sampling.top_p);
        fprintf(f, ",\"seed\":%llu}", (unsigned long long)cfg->sampling.seed);
    } else {
        fputs("{\"mode\":\"greedy\"}", f);
    }
    fprintf(f, ",\"kv_view\":\"%s\"}\n", cfg->kv_view == EMTP_KV_CLEAN ? "clean" : "hf");
    for (int i = 0; i < g->n_rounds; i++) {
        const emtp_round *r = &g->rounds[i];
        fprintf(f, "{\"type\":\"round\",\"index\":%d,\"position\":%d,\"drafts\":", r->index, r->position);
        put_ids(f, r->drafts, r->n_drafts);
        fputs(",\"target\":", f);
        put_ids(f, r->target, r->n_target);
        fprintf(f, ",\"accepted\":%d,\"emitted\":", r->accepted);
        put_ids(f, r->emitted, r->n_emitted);
        fputs(",\"top_logits\":[", f);
        for (int j = 0; j < r->n_top; j++) {
            fprintf(f, j ? ",[%d," : "[%d,", (int)r->top_ids[j]);
            put_double(f, (double)r->top_values[j]);
            fputc(']', f);
        }
        fputs("],\"ms\":{", f);
        if (r->has_draft_ms) {
            fputs("\"draft\":", f);
            put_double(f, r->ms_draft);
            fputc(',', f);
        }
        fputs("\"verify\":", f);
        put_double(f, r->ms_verify);
        fputs(",\"graph\":", f);
        put_double(f, r->ms_graph);
        fputs("}}\n", f);
    }
    int rc = emtp_write_summary(f, g, cfg->draft_len, err);
    if (rc) return rc;
    fputc('\n', f);
    if (ferror(f)) return emtp_fail(err, EMTP_EIO, "cannot write the trace");
    return EMTP_OK;
}

int emtp_write_trace_file(const char *path, const emtp_generation *g, const emtp_config *cfg,
                          const char *implementation, const char *model, emtp_error *err) {
    size_t n = strlen(path);
    char *tmp = malloc(n + 8);
    if (!tmp) return emtp_fail(err, EMTP_ENOMEM, "out of memory");
    snprintf(tmp, n + 8, "%s.tmp~", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        free(tmp);
        return emtp_fail(err, EMTP_EIO, "%s: cannot write the trace", path);
    }
    int rc = emtp_write_trace(f, g, cfg, implementation, model, err);
    if (fclose(f) && !rc) rc = emtp_fail(err, EMTP_EIO, "%s: cannot write the trace", path);
    if (!rc && rename(tmp, path)) rc = emtp_fail(err, EMTP_EIO, "%s: cannot write the trace", path);
    if (rc) remove(tmp);
    free(tmp);
    return rc;
}
