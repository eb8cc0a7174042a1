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

#include "plugin_api.h"

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
