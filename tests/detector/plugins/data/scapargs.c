/* A plugin that reads syscall events' parameters from their libscap records, as a container
 * plugin does (plugin API 3.x layouts, as parsecount.c). In plugin_parse_event it decodes an
 * execve exit (PPME_SYSCALL_EXECVE_19_X, 293: exe, args, pid), an openat exit
 * (PPME_SYSCALL_OPENAT_2_X, 307: fd, name, flags) and a clone exit (PPME_SYSCALL_CLONE_20_X,
 * 223: exe, cwd) and checks the record's layout. Fields (extraction on "syscall"), for the event
 * last parsed:
 *   sa.exe, sa.args (argv[1:] joined by spaces), sa.pid         from an execve exit
 *   sa.fd, sa.name, sa.flags                                   from an openat exit
 *   sa.cwd                                                     from a clone or execve exit
 *   sa.ok (uint64): 1 when len = 26 + 2 * nparams + the lengths, and every string the plugin
 *                   read ends in its nul
 *   sa.type (uint64): the type of the record plugin_extract_fields gets (not parse's)
 *   sa.xname (string): openat's name read from the record plugin_extract_fields gets
 *   sa.nparsed (uint64): plugin_parse_event calls so far (it lists types 223, 293 and 307)
 *   sa.cgroup (string): the first entry of an execve exit's cgroups ("cpuset=/...")
 * Built with -DEXTRACT_OPENAT_ONLY it lists openat exits (307) in plugin_get_extract_event_types.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_api.h"

#define MAXP 32
#define NFIELDS 12
typedef struct {
    uint64_t evtnum;
    uint16_t type;
    char exe[256], args[1024], name[1024], cwd[1024], xname[1024], cgroup[1024];
    uint64_t pid, fd, flags, ok, nparsed;
    int has_exe, has_open, has_cwd, has_cgroup;
    const char *strs[NFIELDS];
    uint64_t nums[NFIELDS];
} state;

const char *plugin_get_required_api_version(void) { return "3.10.0"; }
const char *plugin_get_version(void) { return "0.1.0"; }
const char *plugin_get_name(void) { return "scapargs"; }
const char *plugin_get_description(void) { return "reads syscall parameters for the tests"; }
const char *plugin_get_contact(void) { return "falcoctl-py tests"; }
const char *plugin_get_fields(void) {
    return "[{\"type\":\"string\",\"name\":\"sa.exe\",\"desc\":\"execve exe\"},"
           "{\"type\":\"string\",\"name\":\"sa.args\",\"desc\":\"execve args\"},"
           "{\"type\":\"uint64\",\"name\":\"sa.pid\",\"desc\":\"execve pid\"},"
           "{\"type\":\"uint64\",\"name\":\"sa.fd\",\"desc\":\"openat fd\"},"
           "{\"type\":\"string\",\"name\":\"sa.name\",\"desc\":\"openat name\"},"
           "{\"type\":\"uint64\",\"name\":\"sa.flags\",\"desc\":\"openat flags\"},"
           "{\"type\":\"string\",\"name\":\"sa.cwd\",\"desc\":\"clone/execve cwd\"},"
           "{\"type\":\"uint64\",\"name\":\"sa.ok\",\"desc\":\"record layout checks\"},"
           "{\"type\":\"uint64\",\"name\":\"sa.type\",\"desc\":\"extracted record type\"},"
           "{\"type\":\"string\",\"name\":\"sa.xname\",\"desc\":\"openat name at extraction\"},"
           "{\"type\":\"uint64\",\"name\":\"sa.nparsed\",\"desc\":\"parse calls\"},"
           "{\"type\":\"string\",\"name\":\"sa.cgroup\",\"desc\":\"execve cgroups[0]\"}]";
}
const char *plugin_get_extract_event_sources(void) { return "[\"syscall\"]"; }
const char *plugin_get_parse_event_sources(void) { return "[\"syscall\"]"; }
uint16_t *plugin_get_parse_event_types(uint32_t *n, void *s) {
    static uint16_t types[] = {223, 293, 307};
    *n = 3;
    return types;
}

#ifdef EXTRACT_OPENAT_ONLY /* extraction asked for openat exits only */
uint16_t *plugin_get_extract_event_types(uint32_t *n, void *s) {
    static uint16_t types[] = {307};
    *n = 1;
    return types;
}
#endif

void *plugin_init(const void *in, ss_plugin_rc *rc) {
    *rc = 0;
    return calloc(1, sizeof(state));
}
void plugin_destroy(void *s) { free(s); }
const char *plugin_get_last_error(void *s) { return ""; }

/* The parameters of a record; -1 when the lengths do not add up to its len. */
static int params(const evt_t *e, const uint8_t **at, uint16_t *len) {
    const uint8_t *base = (const uint8_t *)e;
    uint32_t n = e->nparams;
    if (n > MAXP) return -1;
    size_t off = sizeof(evt_t) + 2 * n;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(&len[i], base + sizeof(evt_t) + 2 * i, 2);
        at[i] = base + off;
        off += len[i];
    }
    return off == e->len ? (int)n : -1;
}

/* A string parameter into out; 0 when it is not nul-terminated where its length says. */
static int str(const uint8_t *at, uint16_t len, char *out, size_t size) {
    if (len == 0 || at[len - 1] != 0) { out[0] = 0; return 0; }
    snprintf(out, size, "%s", (const char *)at);
    return 1;
}

static uint64_t u64(const uint8_t *at, uint16_t len) {
    uint64_t v = 0;
    if (len == 8) memcpy(&v, at, 8);
    else if (len == 4) { uint32_t w; memcpy(&w, at, 4); v = w; }
    return v;
}

ss_plugin_rc plugin_parse_event(void *st, const evt_input *ev, const void *in) {
    state *s = st;
    const uint8_t *at[MAXP];
    uint16_t len[MAXP];
    int n = params(ev->evt, at, len);
    s->evtnum = ev->evtnum;
    s->nparsed++;
    s->type = ev->evt->type;
    s->has_exe = s->has_open = s->has_cwd = s->has_cgroup = 0;
    s->ok = n >= 0;
    if (n >= 27 && s->type == 293) {
        s->ok &= str(at[1], len[1], s->exe, sizeof s->exe);
        size_t k = 0;
        for (uint16_t i = 0; i < len[2] && k + 1 < sizeof s->args; i++, k++)
            s->args[k] = at[2][i] ? (char)at[2][i] : ' ';
        if (k > 0 && s->args[k - 1] == ' ') k--;  /* each argument ends with a nul */
        s->args[k] = 0;
        s->ok &= len[2] == 0 || at[2][len[2] - 1] == 0;
        s->pid = u64(at[4], len[4]);
        s->ok &= len[4] == 8;
        s->has_cwd = str(at[6], len[6], s->cwd, sizeof s->cwd);
        /* cgroups: "subsys=path" strings back to back; the first one ends at its nul */
        s->has_cgroup = len[14] > 0 && at[14][len[14] - 1] == 0 &&
                        str(at[14], (uint16_t)(strlen((const char *)at[14]) + 1), s->cgroup,
                            sizeof s->cgroup);
        s->has_exe = 1;
    } else if (n >= 7 && s->type == 307) {
        s->fd = u64(at[0], len[0]);
        s->ok &= len[0] == 8 && len[3] == 4;
        s->ok &= str(at[2], len[2], s->name, sizeof s->name);
        s->flags = u64(at[3], len[3]);
        s->has_open = 1;
    } else if (n >= 7 && s->type == 223) {
        s->has_cwd = str(at[6], len[6], s->cwd, sizeof s->cwd);
        s->has_exe = str(at[1], len[1], s->exe, sizeof s->exe);
        s->args[0] = 0;
        s->pid = u64(at[4], len[4]);
    }
    return 0;
}

ss_plugin_rc plugin_extract_fields(void *st, const evt_input *ev, const extract_input *in) {
    state *s = st;
    int same = ev->evtnum == s->evtnum;
    const uint8_t *at[MAXP];
    uint16_t len[MAXP];
    int n = params(ev->evt, at, len);
    for (uint32_t k = 0; k < in->num_fields && k < NFIELDS; k++) {
        extract_field *f = &in->fields[k];
        uint32_t id = f->field_id;
        int has = same && ((id <= 2 && s->has_exe) || (id >= 3 && id <= 5 && s->has_open) ||
                           (id == 6 && s->has_cwd) || id == 7);
        f->res_len = 1;
        if (id == 11) {
            if (!same || !s->has_cgroup) { f->res_len = 0; continue; }
            s->strs[k] = s->cgroup; f->res.str = &s->strs[k]; continue;
        }
        if (id == 10) { s->nums[k] = s->nparsed; f->res.u64 = &s->nums[k]; continue; }
        if (id == 8) { s->nums[k] = ev->evt->type; f->res.u64 = &s->nums[k]; continue; }
        if (id == 9) {
            if (n < 7 || ev->evt->type != 307 || !str(at[2], len[2], s->xname, sizeof s->xname)) {
                f->res_len = 0;
                continue;
            }
            s->strs[k] = s->xname; f->res.str = &s->strs[k]; continue;
        }
        if (!has) { f->res_len = 0; continue; }
        switch (id) {
        case 0: s->strs[k] = s->exe; f->res.str = &s->strs[k]; break;
        case 1: s->strs[k] = s->args; f->res.str = &s->strs[k]; break;
        case 2: s->nums[k] = s->pid; f->res.u64 = &s->nums[k]; break;
        case 3: s->nums[k] = s->fd; f->res.u64 = &s->nums[k]; break;
        case 4: s->strs[k] = s->name; f->res.str = &s->strs[k]; break;
        case 5: s->nums[k] = s->flags; f->res.u64 = &s->nums[k]; break;
        case 6: s->strs[k] = s->cwd; f->res.str = &s->strs[k]; break;
        default: s->nums[k] = s->ok; f->res.u64 = &s->nums[k]; break;
        }
    }
    return 0;
}
