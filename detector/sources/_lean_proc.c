/* The compiled read loop's process events: the clone family (clone, clone3, fork, vfork) and
 * execve/execveat. The process context (struct proc_ctx) into ctx and Falco's clone or execve
 * parameters, as decode.py's _proc_ctx, _b_clone, _b_execve and _b_execveat make them (a
 * hypothesis test holds the two equal, tests/detector/sources/test_fast.py). */
#include "_lean.h"

struct proc_ctx {
    uint32_t loginuid, sessionid, tty_major, tty_minor, vpid, vtid_level, euid, egid;
    uint64_t cap_inh, cap_prm, cap_eff, exe_ino;
    int64_t exe_ctime, exe_mtime;
    uint32_t exe_dev, exe_flags;
    uint64_t cgroup_id, start_ts;
    char exe_dname[32];
    char cgroup[4][96];
};
_Static_assert(sizeof(struct proc_ctx) == PROC_SIZE, "struct proc_ctx is 520 bytes");

#define LEAN_CLONE_THREAD 0x10000
#define CLONE_VFORK_VM (0x4000 | 0x100)
enum { K_LOGINUID, K_SID, K_TTY, K_VPID, K_EUID, K_EGID, K_CAPI, K_CAPP, K_CAPE, K_EXE_INO,
       K_CTIME, K_MTIME, K_EXE_DEV, K_UPPER, K_OVERLAY, K_MEMFD, K_DNAME, K_CGID, K_EFLAGS,
       K_CGROUP, K_CLONE_FLAGS, K_CHILD_TID, K_CHILD_PID, K_RES, K_EXE, K_ARGS, K_TID, K_PID,
       K_PTID, K_CWD, K_COMM, K_FLAGS, K_UID, K_GID, K_VTID, K_CTX_PID, K_CTX_PPID, K_FILENAME,
       K_TRUSTED, K_ENV, K_DIRFD, K_ARGV, K_START_AGE, K_VFORKED, K_COUNT };
static const char *NAMES[K_COUNT] = {
    "loginuid", "sid", "tty", "vpid", "euid", "egid", "cap_inheritable", "cap_permitted",
    "cap_effective", "exe_ino", "exe_ino_ctime", "exe_ino_mtime", "exe_dev", "exe_upper_layer",
    "exe_overlay", "exe_from_memfd", "exe_dname", "cgroup_id", "exe_flags", "cgroup",
    "clone_flags", "child_tid", "child_pid", "res", "exe", "args", "tid", "pid", "ptid", "cwd",
    "comm", "flags", "uid", "gid", "vtid", "pid", "ppid", "filename", "trusted_exepath", "env",
    "dirfd", "argv", "start_age", "vforked"};
static PyObject *keys[K_COUNT];

int lean_proc_init(void)
{
    for (int i = 0; i < K_COUNT; i++)
        if ((keys[i] = PyUnicode_InternFromString(NAMES[i])) == NULL)
            return -1;
    return 0;
}

static PyObject *text(const char *p, size_t max)
{
    return PyUnicode_DecodeUTF8(p, (Py_ssize_t)strnlen(p, max), "replace");
}

/* seconds * 1e9 as Python computes it (no overflow), or None when there is no inode */
static PyObject *ns(int64_t secs, uint64_t ino)
{
    if (!ino)
        Py_RETURN_NONE;
    PyObject *s = PyLong_FromLongLong(secs), *g = PyLong_FromLong(1000000000L), *r = NULL;
    if (s != NULL && g != NULL)
        r = PyNumber_Multiply(s, g);
    Py_XDECREF(s);
    Py_XDECREF(g);
    return r;
}

/* ctx["cgroup"] = "0::/a/b/c" from the up to four innermost-first path components (none:
 * no key); -1 on error. */
static int put_cgroup(PyObject *ctx, const struct proc_ctx *p)
{
    PyObject *parts = PyList_New(0);
    int rc = -1;
    if (parts == NULL)
        return -1;
    for (int i = 0; i < 4; i++) {
        PyObject *name = text(p->cgroup[i], sizeof p->cgroup[i]);
        if (name == NULL)
            goto out;
        int stop = PyUnicode_GET_LENGTH(name) == 0 ||
                   PyUnicode_CompareWithASCIIString(name, "/") == 0;
        if (stop || PyList_Insert(parts, 0, name) < 0) {
            Py_DECREF(name);
            if (stop)
                break;
            goto out;
        }
        Py_DECREF(name);
    }
    rc = 0;
    if (PyList_GET_SIZE(parts) > 0) {
        PyObject *sep = PyUnicode_FromString("/");
        PyObject *joined = sep ? PyUnicode_Join(sep, parts) : NULL;
        Py_XDECREF(sep);
        rc = joined ? lean_set_item(ctx, keys[K_CGROUP], PyUnicode_FromFormat("0::/%U", joined))
                    : -1;
        Py_XDECREF(joined);
    }
out:
    Py_DECREF(parts);
    return rc;
}

/* decode.py's _proc_ctx: the process context, the task's age at the event, the vfork mark */
static int put_proc(PyObject *ctx, const struct proc_ctx *p, const struct hdr *h)
{
    if (p->start_ts && p->start_ts <= h->ts &&
        lean_set_item(ctx, keys[K_START_AGE], PyLong_FromUnsignedLongLong(h->ts - p->start_ts)))
        return -1;
    if ((h->kind & K_VFORK) && lean_set_item(ctx, keys[K_VFORKED], Py_NewRef(Py_True)))
        return -1;
    size_t dl = strnlen(p->exe_dname, sizeof p->exe_dname);
    int memfd = dl >= 6 && memcmp(p->exe_dname, "memfd:", 6) == 0;
    uint32_t ef = p->exe_flags;
    uint64_t tty = p->tty_major ? ((uint64_t)(p->tty_minor & 0xFF) | ((uint64_t)p->tty_major << 8) |
                                   ((uint64_t)(p->tty_minor & ~0xFFu) << 12)) : 0;
    long flags = (ef & 1 ? 2 : 0) | (memfd ? 4 : 0) | ((ef & 2) && !(ef & 1) ? 8 : 0);
    if (put_cgroup(ctx, p) < 0)
        return -1;
    return lean_set_item(ctx, keys[K_LOGINUID], PyLong_FromUnsignedLong(p->loginuid)) ||
        lean_set_item(ctx, keys[K_SID], PyLong_FromUnsignedLong(p->sessionid)) ||
        lean_set_item(ctx, keys[K_TTY], PyLong_FromUnsignedLongLong(tty)) ||
        lean_set_item(ctx, keys[K_VPID], PyLong_FromUnsignedLong(p->vpid)) ||
        lean_set_item(ctx, keys[K_EUID], PyLong_FromUnsignedLong(p->euid)) ||
        lean_set_item(ctx, keys[K_EGID], PyLong_FromUnsignedLong(p->egid)) ||
        lean_set_item(ctx, keys[K_CAPI], PyLong_FromUnsignedLongLong(p->cap_inh)) ||
        lean_set_item(ctx, keys[K_CAPP], PyLong_FromUnsignedLongLong(p->cap_prm)) ||
        lean_set_item(ctx, keys[K_CAPE], PyLong_FromUnsignedLongLong(p->cap_eff)) ||
        lean_set_item(ctx, keys[K_EXE_INO], p->exe_ino ? PyLong_FromUnsignedLongLong(p->exe_ino)
                                                      : Py_NewRef(Py_None)) ||
        lean_set_item(ctx, keys[K_CTIME], ns(p->exe_ctime, p->exe_ino)) ||
        lean_set_item(ctx, keys[K_MTIME], ns(p->exe_mtime, p->exe_ino)) ||
        lean_set_item(ctx, keys[K_EXE_DEV], PyLong_FromUnsignedLong(p->exe_dev)) ||
        lean_set_item(ctx, keys[K_UPPER], PyBool_FromLong(ef & 1)) ||
        lean_set_item(ctx, keys[K_OVERLAY], PyBool_FromLong(ef & 2)) ||
        lean_set_item(ctx, keys[K_MEMFD], PyBool_FromLong(memfd)) ||
        lean_set_item(ctx, keys[K_DNAME], text(p->exe_dname, sizeof p->exe_dname)) ||
        lean_set_item(ctx, keys[K_CGID], PyLong_FromUnsignedLongLong(p->cgroup_id)) ||
        lean_set_item(ctx, keys[K_EFLAGS], PyLong_FromLong(flags)) ? -1 : 0;
}

/* ctx[key] as a new reference (None when absent) */
static PyObject *from_ctx(PyObject *ctx, int key)
{
    PyObject *v = PyDict_GetItemWithError(ctx, keys[key]);
    return v ? Py_NewRef(v) : (PyErr_Occurred() ? NULL : Py_NewRef(Py_None));
}

static PyObject *lean_exec(const struct hdr *h, const char *proc, int mode, PyObject *ctx);

PyObject *lean_clone(const struct hdr *h, const char *proc, int mode, PyObject *ctx)
{
    if (mode == M_EXECVE || mode == M_EXECVEAT)
        return lean_exec(h, proc, mode, ctx);
    struct proc_ctx p;
    memcpy(&p, proc, sizeof p);
    uint64_t flags = mode == 0 ? h->args[0] : mode == 1 ? (h->kind & K_UBUF ? h->ubuf[0] : 0)
                   : mode == 3 ? CLONE_VFORK_VM : 0;
    if (put_proc(ctx, &p, h) < 0 ||
        lean_set_item(ctx, keys[K_CLONE_FLAGS], PyLong_FromUnsignedLongLong(flags)))
        return NULL;
    if (h->ret > 0 && (lean_set_item(ctx, keys[K_CHILD_TID], PyLong_FromLongLong(h->ret)) ||
                       (!(flags & LEAN_CLONE_THREAD) &&
                        lean_set_item(ctx, keys[K_CHILD_PID], PyLong_FromLongLong(h->ret)))))
        return NULL;
    PyObject *args = PyDict_New();
    if (args == NULL)
        return NULL;
    if (lean_set_item(args, keys[K_RES], PyLong_FromLongLong(h->ret)) ||
        lean_set_item(args, keys[K_EXE], Py_NewRef(Py_None)) ||
        lean_set_item(args, keys[K_ARGS], Py_NewRef(Py_None)) ||
        lean_set_item(args, keys[K_TID], from_ctx(ctx, K_TID)) ||
        lean_set_item(args, keys[K_PID], from_ctx(ctx, K_CTX_PID)) ||
        lean_set_item(args, keys[K_PTID], from_ctx(ctx, K_CTX_PPID)) ||
        lean_set_item(args, keys[K_CWD], Py_NewRef(Py_None)) ||
        lean_set_item(args, keys[K_COMM], from_ctx(ctx, K_COMM)) ||
        lean_set_item(args, keys[K_FLAGS], PyLong_FromUnsignedLongLong(flags)) ||
        lean_set_item(args, keys[K_UID], from_ctx(ctx, K_UID)) ||
        lean_set_item(args, keys[K_GID], from_ctx(ctx, K_GID)) ||
        lean_set_item(args, keys[K_VTID], from_ctx(ctx, K_VTID)) ||
        lean_set_item(args, keys[K_VPID], from_ctx(ctx, K_VPID))) {
        Py_DECREF(args);
        return NULL;
    }
    return args;
}

/* A user string: trailing NULs dropped, UTF-8 with surrogateescape (decode.py's _str). */
static PyObject *user_text(const char *p, Py_ssize_t n)
{
    while (n > 0 && p[n - 1] == 0)
        n--;
    return PyUnicode_DecodeUTF8(p, n, "surrogateescape");
}

/* argv from its NUL-separated bytes, one last empty part dropped (decode.py's _split_args). */
static PyObject *split_args(const char *p, Py_ssize_t n)
{
    PyObject *out = PyList_New(0);
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; out != NULL && n > 0 && i <= n; i++) {
        if (i < n && p[i] != 0)
            continue;
        if (i == n && start == n)
            break;
        PyObject *part = PyUnicode_DecodeUTF8(p + start, i - start, "surrogateescape");
        if (part == NULL || PyList_Append(out, part) < 0)
            Py_CLEAR(out);
        Py_XDECREF(part);
        start = i + 1;
    }
    return out;
}

/* The parameters of execve (Falco's order) that come from ctx, after exe and args. */
static const int EXEC_FROM_CTX[] = {K_TID, K_CTX_PID, K_CTX_PPID, -K_CWD, K_COMM, -K_FILENAME,
                                    K_TTY, K_LOGINUID, K_UID, K_GID, K_CAPI, K_CAPP, K_CAPE,
                                    K_EXE_INO, K_CTIME, K_MTIME, K_EFLAGS, -K_TRUSTED};
static const int EXEC_ARG_NAME[] = {K_TID, K_PID, K_PTID, K_CWD, K_COMM, K_FILENAME, K_TTY,
                                    K_LOGINUID, K_UID, K_GID, K_CAPI, K_CAPP, K_CAPE, K_EXE_INO,
                                    K_CTIME, K_MTIME, K_FLAGS, K_TRUSTED};

/* res, exe (argv[0]; the file name of a failed exec without argv) and args (argv[1:]) */
static int exec_head(PyObject *args, const struct hdr *h, PyObject *file, PyObject *argv)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    PyObject *exe = argc ? PyList_GET_ITEM(argv, 0) : h->ret != 0 ? file : Py_None;
    return lean_set_item(args, keys[K_RES], PyLong_FromLongLong(h->ret)) ||
           lean_set_item(args, keys[K_EXE], Py_NewRef(exe)) ||
           lean_set_item(args, keys[K_ARGS], PyList_GetSlice(argv, 1, argc > 1 ? argc : 1));
}

static PyObject *lean_exec(const struct hdr *h, const char *proc, int mode, PyObject *ctx)
{
    struct proc_ctx p;
    memcpy(&p, proc, sizeof p);
    const char *s = proc + PROC_SIZE;
    PyObject *args = NULL, *file = NULL, *argv = NULL;
    if (put_proc(ctx, &p, h) < 0)
        return NULL;
    file = user_text(s, h->len[0]);
    argv = file ? split_args(s + h->len[0], h->len[1]) : NULL;
    args = argv ? PyDict_New() : NULL;
    if (args == NULL || exec_head(args, h, file, argv))
        goto fail;
    for (size_t i = 0; i < sizeof EXEC_FROM_CTX / sizeof EXEC_FROM_CTX[0]; i++) {
        int k = EXEC_FROM_CTX[i], name = EXEC_ARG_NAME[i];
        if (k == -K_FILENAME && mode == M_EXECVEAT)
            continue; /* execveat: the file name goes to ctx, dirfd to args */
        PyObject *v = k == -K_FILENAME ? Py_NewRef(file) : k < 0 ? Py_NewRef(Py_None)
                    : from_ctx(ctx, k);
        if (lean_set_item(args, keys[name], v))
            goto fail;
    }
    Py_ssize_t env_at = (Py_ssize_t)h->len[0] + h->len[1];
    if (lean_set_item(args, keys[K_ENV], h->ret == 0 ? PyBytes_FromStringAndSize(s + env_at,
                                                                                 h->len[2])
                                                     : Py_NewRef(Py_None)))
        goto fail;
    PyObject *dirfd = NULL;
    if (mode == M_EXECVEAT &&
        ((dirfd = PyLong_FromLong((int32_t)(uint32_t)h->args[0])) == NULL ||
         PyDict_SetItem(args, keys[K_DIRFD], dirfd) < 0)) {
        Py_XDECREF(dirfd);
        goto fail;
    }
    if (h->ret == 0 && PyDict_SetItem(ctx, keys[K_ARGV], argv) < 0)
        goto fail_dirfd;
    if (mode == M_EXECVEAT && (PyDict_SetItem(ctx, keys[K_FILENAME], file) < 0 ||
                               PyDict_SetItem(ctx, keys[K_DIRFD], dirfd) < 0))
        goto fail_dirfd;
    Py_XDECREF(dirfd);
    Py_DECREF(file);
    Py_DECREF(argv);
    return args;
fail_dirfd:
    Py_XDECREF(dirfd);
fail:
    Py_XDECREF(args);
    Py_XDECREF(file);
    Py_XDECREF(argv);
    return NULL;
}

/* apply_ctx(th, args, ctx): detector/state/execs.py's apply_ctx (ids, creds, tty and
 * capabilities of a new process or exec, Falco's args first, then the kernel context), one C
 * call instead of about 30 dict lookups and setattrs in Python. ctx may be None. */
enum { A_TTY, A_SID, A_VPGID, A_CAPE, A_CAPP, A_CAPI, A_EUID, A_UID, A_EGID, A_GID,
       A_LOGINUID, A_COUNT };
static const char *A_NAMES[A_COUNT] = {"tty", "sid", "vpgid", "cap_effective", "cap_permitted",
                                       "cap_inheritable", "euid", "uid", "egid", "gid",
                                       "loginuid"};
static PyObject *akeys[A_COUNT];

/* an int but not a bool (state/args.py's as_int) */
static int is_int(PyObject *v)
{
    return v != NULL && PyLong_Check(v) && !PyBool_Check(v);
}

/* args[key] unless absent or None, else ctx[key] (borrowed; NULL for neither) */
static PyObject *either(PyObject *args, PyObject *ctx, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(args, key);
    if ((v == NULL || v == Py_None) && !PyErr_Occurred() && ctx != NULL)
        v = PyDict_GetItemWithError(ctx, key);
    return v;
}

static int set_int(PyObject *th, PyObject *key, PyObject *v)
{
    return is_int(v) ? PyObject_SetAttr(th, key, v) : 0;
}

PyObject *lean_apply_ctx(PyObject *self, PyObject *a)
{
    PyObject *th, *args, *ctx;
    if (!PyArg_ParseTuple(a, "OO!O", &th, &PyDict_Type, &args, &ctx))
        return NULL;
    if (akeys[0] == NULL)
        for (int i = 0; i < A_COUNT; i++)
            if ((akeys[i] = PyUnicode_InternFromString(A_NAMES[i])) == NULL)
                return NULL;
    if (ctx == Py_None || !PyDict_Check(ctx))
        ctx = NULL;
    for (int i = A_TTY; i <= A_CAPI; i++)
        if (set_int(th, akeys[i], either(args, ctx, akeys[i])) < 0 || PyErr_Occurred())
            return NULL;
    /* user.uid is the effective uid; a source may only know the real one */
    for (int i = A_EUID; i <= A_EGID; i += 2) {
        PyObject *v = ctx != NULL ? PyDict_GetItemWithError(ctx, akeys[i]) : NULL;
        if (v == NULL || !PyLong_CheckExact(v))
            v = PyErr_Occurred() ? NULL : either(args, ctx, akeys[i + 1]);
        if (PyErr_Occurred() || set_int(th, akeys[i + 1], v) < 0)
            return NULL;
    }
    for (int i = A_EUID; i <= A_EGID; i += 2) {
        PyObject *v = PyObject_GetAttr(th, akeys[i + 1]);
        int bad = v == NULL || PyObject_SetAttr(th, akeys[i], v) < 0;
        Py_XDECREF(v);
        if (bad)
            return NULL;
    }
    PyObject *v = either(args, ctx, akeys[A_LOGINUID]);
    if (PyErr_Occurred())
        return NULL;
    if (is_int(v)) {
        int over = 0;
        long long n = PyLong_AsLongLongAndOverflow(v, &over);
        if (n == -1 && PyErr_Occurred())
            return NULL;
        if (!over && (n == 0xFFFFFFFFLL || n == -1)) {
            PyObject *none = PyLong_FromLong(-1);
            int bad = none == NULL || PyObject_SetAttr(th, akeys[A_LOGINUID], none) < 0;
            Py_XDECREF(none);
            if (bad)
                return NULL;
        } else if (PyObject_SetAttr(th, akeys[A_LOGINUID], v) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* exe_facts(th, args, ctx): execs.py's set_exe_facts but its upper-layer callback: True when
 * neither args nor ctx tells exe_upper_layer (the caller then asks the file system). */
enum { X_MEMFD, X_UPPER, X_WRITABLE, X_INO, X_CTIME, X_MTIME, X_EXEPATH, X_PREFIX, X_COUNT };
static const char *X_NAMES[X_COUNT] = {"exe_from_memfd", "exe_upper_layer", "exe_writable",
                                       "exe_ino", "exe_ino_ctime", "exe_ino_mtime", "exepath",
                                       "/memfd:"};
static PyObject *xkeys[X_COUNT];

/* th.<key> = bool(v), or dflt when v is NULL or None; -1 on error */
static int set_bool(PyObject *th, PyObject *key, PyObject *v, int dflt)
{
    int t = v != NULL && v != Py_None ? PyObject_IsTrue(v) : dflt;
    return t < 0 ? -1 : PyObject_SetAttr(th, key, t ? Py_True : Py_False);
}

PyObject *lean_exe_facts(PyObject *self, PyObject *a)
{
    PyObject *th, *args, *ctx, *v[X_MTIME + 1];
    if (!PyArg_ParseTuple(a, "OO!O", &th, &PyDict_Type, &args, &ctx))
        return NULL;
    for (int i = X_COUNT - 1; xkeys[0] == NULL && i >= 0; i--)  /* xkeys[0] last: all set */
        if ((xkeys[i] = PyUnicode_InternFromString(X_NAMES[i])) == NULL)
            return NULL;
    ctx = ctx == Py_None || !PyDict_Check(ctx) ? NULL : ctx;
    for (int i = X_MEMFD; i <= X_MTIME; i++)
        if ((v[i] = either(args, ctx, xkeys[i])) == NULL && PyErr_Occurred())
            return NULL;
    int memfd = 0;
    if (v[X_MEMFD] == NULL || v[X_MEMFD] == Py_None) {
        PyObject *path = PyObject_GetAttr(th, xkeys[X_EXEPATH]);
        if (path == NULL)
            return NULL;
        memfd = PyUnicode_Check(path) ? (int)PyUnicode_Tailmatch(path, xkeys[X_PREFIX], 0,
                                                                  PY_SSIZE_T_MAX, -1) : 0;
        Py_DECREF(path);
        if (memfd < 0)
            return NULL;
    }
    if (set_bool(th, xkeys[X_MEMFD], v[X_MEMFD], memfd) < 0 ||
        (v[X_UPPER] != NULL && v[X_UPPER] != Py_None &&
         set_bool(th, xkeys[X_UPPER], v[X_UPPER], 0) < 0) ||
        set_bool(th, xkeys[X_WRITABLE], v[X_WRITABLE], 0) < 0)
        return NULL;
    for (int i = X_INO; i <= X_MTIME; i++)
        if (set_int(th, xkeys[i], v[i]) < 0)
            return NULL;
    return PyBool_FromLong(v[X_UPPER] == NULL || v[X_UPPER] == Py_None);
}
