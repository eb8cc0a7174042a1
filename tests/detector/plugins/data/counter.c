/* A tiny Falco plugin (plugin API 3.x) for the detector's tests: it sources events from a
 * counter and extracts fields from them.
 *
 *   source "counter", id 999; open_params: how many events (default 3), then EOF
 *   payload: "<prefix>-<n>" where prefix comes from init_config {"prefix": "..."} (default "evt")
 *   fields: counter.n (uint64), counter.msg (string), counter.even (bool),
 *           counter.word[key] (string: "<key>:<n>")
 * Built with -DCOUNTER_SYSCALL it also extracts on the "syscall" source
 * (plugin_get_extract_event_sources: ["counter", "syscall"]) and has two more fields:
 *           counter.tid (uint64: the event's thread id, any event),
 *           counter.calls (uint64: plugin_extract_fields calls so far, batching shows in it)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint32_t ss_plugin_bool;
typedef int32_t ss_plugin_rc;

#pragma pack(push, 1)
typedef struct ss_plugin_event {
    uint64_t ts;
    uint64_t tid;
    uint32_t len;
    uint16_t type;
    uint32_t nparams;
} ss_plugin_event;
#pragma pack(pop)

typedef struct ss_plugin_event_input {
    const ss_plugin_event *evt;
    uint64_t evtnum;
    const char *evtsrc;
} ss_plugin_event_input;

typedef struct ss_plugin_extract_field {
    union { const char **str; uint64_t *u64; uint32_t *u32; ss_plugin_bool *boolean; } res;
    uint64_t res_len;
    uint32_t field_id;
    const char *field;
    const char *arg_key;
    uint64_t arg_index;
    ss_plugin_bool arg_present;
    uint32_t ftype;
    ss_plugin_bool flist;
} ss_plugin_extract_field;

typedef struct ss_plugin_field_extract_input {
    void *owner;
    void *get_owner_last_error;
    uint32_t num_fields;
    ss_plugin_extract_field *fields;
} ss_plugin_field_extract_input;

typedef struct ss_plugin_init_input {
    const char *config;
    void *owner;
    void *get_owner_last_error;
    void *tables;
} ss_plugin_init_input;

#define MAXF 16

typedef struct state {
    char prefix[64];
    char lasterr[256];
    /* one slot per requested field: every value of one call stays valid until the next */
    char strbuf[MAXF][128];
    const char *strptr[MAXF];
    uint64_t u64[MAXF];
    uint32_t b[MAXF];
    uint64_t calls;
} state;

typedef struct instance {
    uint64_t n, total;
    uint8_t buf[256];
    ss_plugin_event *evt;
} instance;

const char *plugin_get_required_api_version(void) { return "3.0.0"; }
const char *plugin_get_version(void) { return "0.2.1"; }
const char *plugin_get_name(void) { return "counter"; }
const char *plugin_get_description(void) { return "counts for the tests"; }
const char *plugin_get_contact(void) { return "falcoctl-py tests"; }
uint32_t plugin_get_id(void) { return 999; }
const char *plugin_get_event_source(void) { return "counter"; }

const char *plugin_get_fields(void) {
    return "[{\"type\":\"uint64\",\"name\":\"counter.n\",\"desc\":\"the event's number\"},"
           "{\"type\":\"string\",\"name\":\"counter.msg\",\"desc\":\"the payload\"},"
           "{\"type\":\"bool\",\"name\":\"counter.even\",\"desc\":\"n is even\"},"
           "{\"type\":\"string\",\"name\":\"counter.word\",\"desc\":\"key:n\","
           "\"arg\":{\"isRequired\":true,\"isKey\":true}}"
#ifdef COUNTER_SYSCALL
           ",{\"type\":\"uint64\",\"name\":\"counter.tid\",\"desc\":\"thread id\"},"
           "{\"type\":\"uint64\",\"name\":\"counter.calls\",\"desc\":\"extract calls\"}"
#endif
           "]";
}

#ifdef COUNTER_SYSCALL
const char *plugin_get_extract_event_sources(void) { return "[\"counter\",\"syscall\"]"; }
#endif

void *plugin_init(const ss_plugin_init_input *in, ss_plugin_rc *rc) {
    state *s = calloc(1, sizeof(state));
    strcpy(s->prefix, "evt");
    const char *cfg = in && in->config ? in->config : "";
    if (strstr(cfg, "\"fail\"")) {
        strcpy(s->lasterr, "init refused: fail requested");
        *rc = 1;
        return s;
    }
    const char *p = strstr(cfg, "\"prefix\"");
    if (p) {
        p = strchr(p + 8, '"');
        if (p) {
            const char *e = strchr(p + 1, '"');
            if (e && e - p - 1 < 63) { memcpy(s->prefix, p + 1, e - p - 1); s->prefix[e - p - 1] = 0; }
        }
    }
    *rc = 0;
    return s;
}

void plugin_destroy(void *s) { free(s); }
const char *plugin_get_last_error(void *s) { return ((state *)s)->lasterr; }

void *plugin_open(void *s, const char *params, ss_plugin_rc *rc) {
    instance *h = calloc(1, sizeof(instance));
    h->total = (params && *params) ? strtoull(params, NULL, 10) : 3;
    *rc = 0;
    return h;
}

void plugin_close(void *s, void *h) { free(h); }

ss_plugin_rc plugin_next_batch(void *s, void *hh, uint32_t *nevts, ss_plugin_event ***evts) {
    instance *h = hh;
    static ss_plugin_event *one[1];
    if (h->n >= h->total) { *nevts = 0; return 2; }
    h->n++;
    char payload[96];
    int plen = snprintf(payload, sizeof payload, "%s-%llu", ((state *)s)->prefix,
                        (unsigned long long)h->n);
    ss_plugin_event *e = (ss_plugin_event *)h->buf;
    e->ts = 1700000000000000000ULL + h->n;
    e->tid = (uint64_t)-1;
    e->type = 322;
    e->nparams = 2;
    uint32_t *lens = (uint32_t *)(h->buf + sizeof(ss_plugin_event));
    lens[0] = 4;
    lens[1] = (uint32_t)plen;
    uint32_t id = 999;
    memcpy(h->buf + sizeof(ss_plugin_event) + 8, &id, 4);
    memcpy(h->buf + sizeof(ss_plugin_event) + 12, payload, plen);
    e->len = sizeof(ss_plugin_event) + 12 + plen;
    one[0] = e;
    *evts = one;
    *nevts = 1;
    return 0;
}

ss_plugin_rc plugin_extract_fields(void *ss, const ss_plugin_event_input *ev,
                                   const ss_plugin_field_extract_input *in) {
    state *s = ss;
    const uint8_t *raw = (const uint8_t *)ev->evt;
    int plugin_evt = ev->evt->type == 322;
    uint32_t dlen = plugin_evt ? ((const uint32_t *)(raw + sizeof(ss_plugin_event)))[1] : 0;
    const char *data = (const char *)raw + sizeof(ss_plugin_event) + 12;
    const char *dash = plugin_evt ? memchr(data, '-', dlen) : NULL;
    uint64_t n = dash ? strtoull(dash + 1, NULL, 10) : 0;
    s->calls++;
    for (uint32_t i = 0; i < in->num_fields && i < MAXF; i++) {
        ss_plugin_extract_field *f = &in->fields[i];
        f->res_len = 1;
        if (!plugin_evt && f->field_id < 4) { f->res_len = 0; continue; }
        switch (f->field_id) {
        case 0: s->u64[i] = n; f->res.u64 = &s->u64[i]; break;
        case 1:
            snprintf(s->strbuf[i], sizeof s->strbuf[i], "%.*s", (int)dlen, data);
            s->strptr[i] = s->strbuf[i]; f->res.str = &s->strptr[i]; break;
        case 2: s->b[i] = (n % 2) == 0; f->res.boolean = &s->b[i]; break;
        case 3:
            if (!f->arg_present) { f->res_len = 0; break; }
            snprintf(s->strbuf[i], sizeof s->strbuf[i], "%s:%llu", f->arg_key,
                     (unsigned long long)n);
            s->strptr[i] = s->strbuf[i]; f->res.str = &s->strptr[i]; break;
        case 4: s->u64[i] = ev->evt->tid; f->res.u64 = &s->u64[i]; break;
        case 5: s->u64[i] = s->calls; f->res.u64 = &s->u64[i]; break;
        default: f->res_len = 0;
        }
    }
    return 0;
}
