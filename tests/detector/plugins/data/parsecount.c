/* A parsing plugin for the runtime's tests (plugin API 3.x layouts, as sdkstyle.c): it parses
 * every "syscall" event, counts them, and reads the event thread's "comm" and the table's size
 * from the owner's "threads" table in plugin_parse_event. Fields (extraction on "syscall"):
 *   pc.count (uint64): events parsed so far
 *   pc.comm  (string, addOutput): the comm the table had for this event's tid when parsed
 *   pc.size  (uint64): the threads table's size when this event was parsed
 *   pc.rows  (uint64): rows iterate_entries visits whose "pid" and "comm" read back (now)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int32_t ss_plugin_rc;
typedef uint32_t ss_plugin_bool;
typedef void tab_t;
typedef void ent_t;
typedef void fld_t;
typedef union { int64_t s64; uint64_t u64; const char *str; ss_plugin_bool b; } sdata;
typedef struct {
    const void *(*list_table_fields)(tab_t *t, uint32_t *n);
    fld_t *(*get_table_field)(tab_t *t, const char *name, uint32_t type);
    fld_t *(*add_table_field)(tab_t *t, const char *name, uint32_t type);
} fields_vt;
typedef ss_plugin_bool (*iter_fn)(void *s, ent_t *e);
typedef struct {
    const char *(*get_table_name)(tab_t *t);
    uint64_t (*get_table_size)(tab_t *t);
    ent_t *(*get_table_entry)(tab_t *t, const sdata *key);
    ss_plugin_rc (*read_entry_field)(tab_t *t, ent_t *e, const fld_t *f, sdata *out);
    void (*release_table_entry)(tab_t *t, ent_t *e);
    ss_plugin_bool (*iterate_entries)(tab_t *t, iter_fn it, void *s);
} reader_vt;
typedef struct { void *a, *b, *c, *d; } old_reader_vt;
typedef struct { void *a, *b, *c, *d, *e, *f; } old_writer_vt;
typedef struct {
    void *(*list_tables)(void *o, uint32_t *n);
    tab_t *(*get_table)(void *o, const char *name, uint32_t key_type);
    ss_plugin_rc (*add_table)(void *o, const void *in);
    fields_vt fields;
    fields_vt *fields_ext;
    reader_vt *reader_ext;
    void *writer_ext;
} tables_input;
typedef struct {
    const char *config;
    void *owner;
    const char *(*get_owner_last_error)(void *o);
    const tables_input *tables;
    void (*log_fn)(const char *component, const char *msg, uint32_t sev);
} init_input;
#pragma pack(push, 1)
typedef struct { uint64_t ts; uint64_t tid; uint32_t len; uint16_t type; uint32_t nparams; } evt_t;
#pragma pack(pop)
typedef struct { const evt_t *evt; uint64_t evtnum; const char *evtsrc; } evt_input;
typedef struct {
    union { const char **str; uint64_t *u64; } res;
    uint64_t res_len;
    uint32_t field_id;
    const char *field;
    const char *arg_key;
    uint64_t arg_index;
    ss_plugin_bool arg_present;
    uint32_t ftype;
    ss_plugin_bool flist;
} extract_field;
typedef struct {
    void *owner;
    void *get_owner_last_error;
    uint32_t num_fields;
    extract_field *fields;
    old_reader_vt table_reader;
    reader_vt *table_reader_ext;
    void *value_offsets;
} extract_input;
typedef struct {
    void *owner;
    void *get_owner_last_error;
    old_reader_vt table_reader;
    old_writer_vt table_writer;
    reader_vt *table_reader_ext;
    void *table_writer_ext;
} parse_input;

typedef struct {
    tab_t *threads;
    fld_t *comm, *pid;
    uint64_t count, evtnum, size;
    char comm_now[64];
    char lasterr[128];
    const char *strs[4];
    uint64_t nums[4];
    reader_vt *reader;
    uint64_t rows;
} state;

const char *plugin_get_required_api_version(void) { return "3.10.0"; }
const char *plugin_get_version(void) { return "0.2.0"; }
const char *plugin_get_name(void) { return "parsecount"; }
const char *plugin_get_description(void) { return "parses syscall events for the tests"; }
const char *plugin_get_contact(void) { return "falcoctl-py tests"; }
const char *plugin_get_fields(void) {
    return "[{\"type\":\"uint64\",\"name\":\"pc.count\",\"desc\":\"events parsed\"},"
           "{\"type\":\"string\",\"name\":\"pc.comm\",\"desc\":\"comm when parsed\","
           "\"addOutput\":true},"
           "{\"type\":\"uint64\",\"name\":\"pc.size\",\"desc\":\"threads table size\"},"
           "{\"type\":\"uint64\",\"name\":\"pc.rows\",\"desc\":\"rows iterated\"}]";
}
const char *plugin_get_extract_event_sources(void) { return "[\"syscall\"]"; }
const char *plugin_get_parse_event_sources(void) { return "[\"syscall\"]"; }

void *plugin_init(const init_input *in, ss_plugin_rc *rc) {
    state *s = calloc(1, sizeof(state));
    s->threads = in->tables->get_table(in->owner, "threads", 4 /* int64 */);
    if (s->threads) {
        s->comm = in->tables->fields_ext->get_table_field(s->threads, "comm", 9 /* string */);
        s->pid = in->tables->fields_ext->get_table_field(s->threads, "pid", 4 /* int64 */);
    }
    if (!s->threads || !s->comm || !s->pid) {
        strcpy(s->lasterr, "no threads table with comm and pid");
        *rc = 1;
        return s;
    }
    *rc = 0;
    return s;
}
void plugin_destroy(void *s) { free(s); }
const char *plugin_get_last_error(void *s) { return ((state *)s)->lasterr; }

ss_plugin_rc plugin_parse_event(void *st, const evt_input *ev, const parse_input *in) {
    state *s = st;
    sdata key, out;
    s->count++;
    s->evtnum = ev->evtnum;
    s->comm_now[0] = 0;
    s->size = in->table_reader_ext->get_table_size(s->threads);
    key.s64 = (int64_t)ev->evt->tid;
    ent_t *e = in->table_reader_ext->get_table_entry(s->threads, &key);
    if (!e) return 0;
    if (in->table_reader_ext->read_entry_field(s->threads, e, s->comm, &out) == 0)
        snprintf(s->comm_now, sizeof s->comm_now, "%s", out.str);
    in->table_reader_ext->release_table_entry(s->threads, e);
    return 0;
}

static ss_plugin_bool count_row(void *arg, ent_t *e) {
    state *s = arg;
    sdata pid, comm;
    if (s->reader->read_entry_field(s->threads, e, s->pid, &pid) == 0 && pid.s64 > 0 &&
        s->reader->read_entry_field(s->threads, e, s->comm, &comm) == 0 && comm.str)
        s->rows++;
    return 1;
}

ss_plugin_rc plugin_extract_fields(void *st, const evt_input *ev, const extract_input *in) {
    state *s = st;
    int same = ev->evtnum == s->evtnum;
    for (uint32_t k = 0; k < in->num_fields && k < 4; k++) {
        extract_field *f = &in->fields[k];
        f->res_len = 1;
        switch (f->field_id) {
        case 0: s->nums[k] = s->count; f->res.u64 = &s->nums[k]; break;
        case 1:
            if (!same || !s->comm_now[0]) { f->res_len = 0; break; }
            s->strs[k] = s->comm_now; f->res.str = &s->strs[k]; break;
        case 2: s->nums[k] = same ? s->size : 0; f->res.u64 = &s->nums[k]; break;
        default:
            s->rows = 0;
            s->reader = in->table_reader_ext;
            in->table_reader_ext->iterate_entries(s->threads, count_row, s);
            s->nums[k] = s->rows; f->res.u64 = &s->nums[k]; break;
        }
    }
    return 0;
}
