/* The plugin API 3.x structures the test plugins use (plugin_api.h and plugin_types.h of
 * Falco's plugin API, declared again here: the same layouts, shorter names). sdkstyle.c's
 * SDK_LAYOUT program prints their sizes and offsets for the ctypes structs to be checked. */
#ifndef TEST_PLUGIN_API_H
#define TEST_PLUGIN_API_H
#include <stdint.h>

typedef int32_t ss_plugin_rc;
typedef uint32_t ss_plugin_bool;
typedef void tab_t;
typedef void ent_t;
typedef void fld_t;
typedef union { int64_t s64; uint64_t u64; const char *str; ss_plugin_bool b; } sdata;
typedef struct { const char *name; uint32_t type; ss_plugin_bool read_only; } fieldinfo;
typedef struct { const char *name; uint32_t key_type; } tableinfo;

typedef struct {
    const fieldinfo *(*list_table_fields)(tab_t *t, uint32_t *n);
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
typedef struct { /* the deprecated reader: the first four members of reader_vt */
    const char *(*get_table_name)(tab_t *t);
    uint64_t (*get_table_size)(tab_t *t);
    ent_t *(*get_table_entry)(tab_t *t, const sdata *key);
    ss_plugin_rc (*read_entry_field)(tab_t *t, ent_t *e, const fld_t *f, sdata *out);
} old_reader_vt;
typedef struct {
    ss_plugin_rc (*clear_table)(tab_t *t);
    ss_plugin_rc (*erase_table_entry)(tab_t *t, const sdata *key);
    ent_t *(*create_table_entry)(tab_t *t);
    void (*destroy_table_entry)(tab_t *t, ent_t *e);
    ent_t *(*add_table_entry)(tab_t *t, const sdata *key, ent_t *e);
    ss_plugin_rc (*write_entry_field)(tab_t *t, ent_t *e, const fld_t *f, const sdata *in);
} writer_vt;
typedef struct {
    tableinfo *(*list_tables)(void *o, uint32_t *n);
    tab_t *(*get_table)(void *o, const char *name, uint32_t key_type);
    ss_plugin_rc (*add_table)(void *o, const void *in);
    fields_vt fields;
    fields_vt *fields_ext;
    reader_vt *reader_ext;
    writer_vt *writer_ext;
} tables_input;
typedef void (*log_fn_t)(const char *component, const char *msg, uint32_t sev);
typedef struct {
    const char *config;
    void *owner;
    const char *(*get_owner_last_error)(void *o);
    const tables_input *tables;
    log_fn_t log_fn;
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
typedef writer_vt old_writer_vt; /* the deprecated writer: the same six members */
typedef struct {
    void *owner;
    void *get_owner_last_error;
    old_reader_vt table_reader;
    old_writer_vt table_writer;
    reader_vt *table_reader_ext;
    writer_vt *table_writer_ext;
} parse_input;

#endif
