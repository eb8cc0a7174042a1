/* Shared by the compiled read loop's files (_lean.c, _lean_proc.c, _lean_sock.c, _lean_ring.c). */
#ifndef LEAN_H
#define LEAN_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define HDR_SIZE 144     /* struct hdr (detector/sources/layout.py's HDR) */
#define RB_HDR 8         /* a ring buffer record's own header */
#define RB_BUSY (1u << 31)
#define RB_DISCARD (1u << 30)
#define K_PROC 1
#define K_TUPLE 2
#define MAX_NR (1024 + 64) /* syscall numbers and NR_PROCEXIT (1001) */
#define MAX_PARAMS 8
#define N_FIELDS 14

enum { F_NUM, F_TS, F_TYPE, F_TID, F_DIR, F_CPU, F_RES, F_ARGS, F_THREAD, F_FD, F_SOURCE,
       F_PLUGIN_DATA, F_PLUGIN_FIELDS, F_CTX };

struct param { PyObject *name; char letter; int index; };
struct entry { PyObject *name; int n; struct param p[MAX_PARAMS]; };

struct hdr {
    uint64_t ts, pid_tgid;
    int64_t ret;
    uint64_t args[6], uid_gid;
    uint32_t nr, ppid;
    uint16_t len[4], kind, size;
    uint32_t cpu;
    char comm[16];
    uint64_t ubuf[3];
};
_Static_assert(sizeof(struct hdr) == HDR_SIZE, "struct hdr is 144 bytes");

#define K_UBUF 4
#define K_DIR 8
#define K_VFORK 16
#define PROC_SIZE 520 /* struct proc_ctx (layout.py's PROC) */
#define TUPLE_SIZE 48 /* struct tuple (layout.py's TUPLE) */

/* A new reference v put into d under k (v NULL: an error already set). */
int lean_set_item(PyObject *d, PyObject *k, PyObject *v);
/* The event families decoded in their own files (fast.py's FAMILIES gives these numbers). */
enum { M_CLONE, M_CLONE3, M_FORK, M_VFORK, M_EXECVE, M_EXECVEAT, SOCK_CONNECT, SOCK_BIND,
       SOCK_IO, SOCK_ACCEPT, SOCK_ACCEPT4, M_COUNT };
/* Intern the families' keys; 0 on success. */
int lean_proc_init(void);
int lean_sock_init(void);
/* ctx gets the process context at proc and the clone or exec facts; returns the args dict, or
 * NULL. */
PyObject *lean_clone(const struct hdr *h, const char *proc, int mode, PyObject *ctx);
/* ctx gets the socket tuple and sockaddr of the record body (after struct hdr); returns the
 * args dict, or NULL. */
PyObject *lean_sock(const struct hdr *h, const char *body, int mode, PyObject *ctx);
/* Whether setup() was called (else a RuntimeError is set); 1 or 0. */
int lean_ready(void);
/* The record at pos of data (len bytes) as an Event, or the pure-Python fallback's answer. */
PyObject *lean_decode_record(PyObject *buf, const char *data, Py_ssize_t len, Py_ssize_t pos,
                             long long num, long long boot);
/* apply_ctx(th, args, ctx): state/execs.py's apply_ctx (_lean_proc.c). */
PyObject *lean_apply_ctx(PyObject *self, PyObject *a);
/* exe_facts(th, args, ctx): state/execs.py's set_exe_facts; True: the upper layer is unknown. */
PyObject *lean_exe_facts(PyObject *self, PyObject *a);
/* consume(...): the records of one ring buffer (_lean_ring.c). */
PyObject *lean_consume(PyObject *self, PyObject *a);
#endif
