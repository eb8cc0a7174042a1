/* A test plugin written the way the plugin SDK's plugins are: in plugin_init it reads the
 * owner's "threads" table through tables->fields_ext (listing fields, getting one, adding one)
 * and logs through log_fn, without checking them for NULL (as the C++ SDK does); its
 * extraction reads the thread's comm through table_reader_ext. Capabilities: event source
 * (timestamps (uint64_t)-1: "now"), field extraction and event parsing. Struct layouts are
 * those of plugin API 3.x (plugin_api.h, plugin_types.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_api.h"

typedef struct {
    tab_t *threads;
    fld_t *comm, *cid;
    uint32_t nfields;
    char lasterr[256];
    char bufs[8][128]; /* one per requested field, valid until the next call */
    const char *ptrs[8];
    uint64_t nfields_out;
} state;
typedef struct { uint64_t n; uint8_t buf[64]; } inst;

const char *plugin_get_required_api_version(void) { return "3.10.0"; }
const char *plugin_get_version(void) { return "0.1.0"; }
const char *plugin_get_name(void) { return "sdkstyle"; }
const char *plugin_get_description(void) { return "SDK-style plugin for the tests"; }
const char *plugin_get_contact(void) { return "falcoctl-py tests"; }
uint32_t plugin_get_id(void) { return 998; }
const char *plugin_get_event_source(void) { return "sdkstyle"; }
const char *plugin_get_fields(void) {
    return "[{\"type\":\"string\",\"name\":\"sdk.comm\",\"desc\":\"the thread's comm\"},"
           "{\"type\":\"uint64\",\"name\":\"sdk.nfields\",\"desc\":\"threads fields\"},"
           "{\"type\":\"string\",\"name\":\"sdk.cid\",\"desc\":\"set by parsing\"}]";
}
const char *plugin_get_extract_event_sources(void) { return "[\"sdkstyle\",\"syscall\"]"; }
const char *plugin_get_parse_event_sources(void) { return "[\"syscall\"]"; }

void *plugin_init(const init_input *in, ss_plugin_rc *rc) {
    state *s = calloc(1, sizeof(state));
    char msg[128];
    /* no NULL checks, as the SDK: a missing tables or log_fn is a crash */
    s->threads = in->tables->get_table(in->owner, "threads", 4 /* int64 */);
    if (!s->threads) { strcpy(s->lasterr, "no threads table"); *rc = 1; return s; }
    in->tables->fields_ext->list_table_fields(s->threads, &s->nfields);
    s->comm = in->tables->fields_ext->get_table_field(s->threads, "comm", 9 /* string */);
    s->cid = in->tables->fields_ext->add_table_field(s->threads, "sdk_container_id", 9);
    if (!s->comm || !s->cid) { strcpy(s->lasterr, "no comm field"); *rc = 1; return s; }
    snprintf(msg, sizeof msg, "threads table has %u fields", s->nfields);
    in->log_fn(NULL, msg, 6 /* info */);
    in->log_fn("sdkstyle-init", "ready", 7 /* debug */);
    *rc = 0;
    return s;
}
void plugin_destroy(void *s) { free(s); }
const char *plugin_get_last_error(void *s) { return ((state *)s)->lasterr; }

void *plugin_open(void *s, const char *params, ss_plugin_rc *rc) {
    (void)s; (void)params;
    *rc = 0;
    return calloc(1, sizeof(inst));
}
void plugin_close(void *s, void *h) { (void)s; free(h); }
ss_plugin_rc plugin_next_batch(void *s, void *h, uint32_t *nevts, evt_t ***evts) {
    static evt_t *one[1];
    inst *i = h;
    (void)s;
    if (i->n >= 3) { *nevts = 0; return 2; /* EOF */ }
    evt_t *e = (evt_t *)i->buf;
    e->ts = (uint64_t)-1; /* "now" */
    e->tid = (uint64_t)-1;
    e->type = 322; /* PPME_PLUGINEVENT_E */
    e->nparams = 2;
    uint32_t lens[2] = {4, 2};
    uint32_t id = 998;
    memcpy(i->buf + 26, lens, 8);
    memcpy(i->buf + 34, &id, 4);
    memcpy(i->buf + 38, "hi", 2);
    e->len = 40;
    i->n++;
    one[0] = e;
    *nevts = 1;
    *evts = one;
    return 0;
}

ss_plugin_rc plugin_extract_fields(void *st, const evt_input *ev, const extract_input *in) {
    state *s = st;
    for (uint32_t k = 0; k < in->num_fields; k++) {
        extract_field *f = &in->fields[k];
        f->res_len = 0;
        if (f->field_id == 1) {
            s->nfields_out = s->nfields;
            f->res.u64 = &s->nfields_out;
            f->res_len = 1;
            continue;
        }
        sdata key;
        key.s64 = (int64_t)ev->evt->tid;
        ent_t *e = in->table_reader_ext->get_table_entry(s->threads, &key);
        if (!e) continue;
        sdata out;
        if (in->table_reader_ext->read_entry_field(s->threads, e,
                                                   f->field_id == 2 ? s->cid : s->comm,
                                                   &out) == 0) {
            snprintf(s->bufs[k % 8], sizeof s->bufs[0], "%s", out.str);
            s->ptrs[k % 8] = s->bufs[k % 8];
            f->res.str = &s->ptrs[k % 8];
            f->res_len = 1;
        }
        in->table_reader_ext->release_table_entry(s->threads, e);
    }
    return 0;
}

/* Parsing writes the added field: "c-<tid>" for the event's thread. */
ss_plugin_rc plugin_parse_event(void *st, const evt_input *ev, const parse_input *in) {
    state *s = st;
    char value[32];
    sdata key, v;
    key.s64 = (int64_t)ev->evt->tid;
    ent_t *e = in->table_reader_ext->get_table_entry(s->threads, &key);
    if (!e) return 1;
    snprintf(value, sizeof value, "c-%lld", (long long)key.s64);
    v.str = value;
    ss_plugin_rc rc = in->table_writer_ext->write_entry_field(s->threads, e, s->cid, &v);
    in->table_reader_ext->release_table_entry(s->threads, e);
    return rc;
}

#ifdef SDK_LAYOUT
#include <stddef.h>
/* Built as a program by the layout test: the offsets the ctypes structs must match. */
int main(void) {
    printf("init_input %zu %zu %zu\n", sizeof(init_input), offsetof(init_input, tables),
           offsetof(init_input, log_fn));
    printf("tables_input %zu %zu %zu %zu\n", sizeof(tables_input),
           offsetof(tables_input, fields_ext), offsetof(tables_input, reader_ext),
           offsetof(tables_input, writer_ext));
    printf("extract_input %zu %zu %zu\n", sizeof(extract_input),
           offsetof(extract_input, table_reader_ext), offsetof(extract_input, value_offsets));
    printf("parse_input %zu %zu %zu\n", sizeof(parse_input),
           offsetof(parse_input, table_reader_ext), offsetof(parse_input, table_writer_ext));
    printf("reader_vt %zu\nwriter_vt %zu\nfields_vt %zu\nfieldinfo %zu\n", sizeof(reader_vt),
           sizeof(writer_vt), sizeof(fields_vt), sizeof(fieldinfo));
    return 0;
}
#endif
