/* The compiled read loop's socket events (connect, accept, accept4, bind, sendto, sendmsg,
 * recvfrom, recvmsg): the kernel socket's tuple and the sockaddr into ctx, and Falco's
 * parameters, as decode.py's tuple_info/sockaddr and its builders make them (a hypothesis test
 * holds the two equal). */
#include "_lean.h"
#include <arpa/inet.h>
#include <sys/socket.h>

enum { S_FAM, S_L4, S_LIP, S_LPORT, S_RIP, S_RPORT, S_SOCKADDR, S_FAMILY, S_IP, S_PORT, S_PATH,
       S_RES, S_TUPLE, S_FD, S_ADDR, S_QPCT, S_QLEN, S_QMAX, S_LISTEN_FD, S_UNIX_PATH, S_FLAGS,
       S_DATA, S_SIZE, S_INO, S_HIST, S_COUNT };
static const char *NAMES[S_COUNT] = {
    "sock_family", "l4proto", "lip", "lport", "rip", "rport", "sockaddr", "family", "ip", "port",
    "path", "res", "tuple", "fd", "addr", "queuepct", "queuelen", "queuemax", "listen_fd",
    "unix_path", "flags", "data", "size", "sock_ino", "sock_hist"};
static PyObject *keys[S_COUNT];

int lean_sock_init(void)
{
    for (int i = 0; i < S_COUNT; i++)
        if ((keys[i] = PyUnicode_InternFromString(NAMES[i])) == NULL)
            return -1;
    return 0;
}

static PyObject *ip_text(int af, const void *addr)
{
    char out[INET6_ADDRSTRLEN];
    if (inet_ntop(af, addr, out, sizeof out) == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyUnicode_FromString(out);
}

static int put_tuple(PyObject *ctx, const uint8_t *t)
{
    uint16_t family, stype, proto, lport, rport, hist;
    uint32_t ino;
    memcpy(&family, t, 2), memcpy(&stype, t + 2, 2), memcpy(&proto, t + 4, 2);
    memcpy(&lport, t + 6, 2), memcpy(&rport, t + 8, 2), memcpy(&hist, t + 10, 2);
    memcpy(&ino, t + 12, 4);
    int v4 = family == AF_INET, af = v4 ? AF_INET : AF_INET6;
    const char *l4 = proto == 6 ? "tcp" : proto == 17 ? "udp" : proto == 1 || proto == 58 ? "icmp"
                   : proto == 255 ? "raw" : stype == SOCK_DGRAM ? "udp" : "tcp";
    return lean_set_item(ctx, keys[S_FAM], PyUnicode_FromString(v4 ? "ipv4" : "ipv6")) ||
        lean_set_item(ctx, keys[S_L4], PyUnicode_FromString(l4)) ||
        lean_set_item(ctx, keys[S_LIP], ip_text(af, t + 16)) ||
        lean_set_item(ctx, keys[S_LPORT], PyLong_FromLong(lport)) ||
        lean_set_item(ctx, keys[S_RIP], ip_text(af, t + 32)) ||
        lean_set_item(ctx, keys[S_RPORT], PyLong_FromLong(rport)) ||
        lean_set_item(ctx, keys[S_INO], PyLong_FromUnsignedLong(ino)) ||
        (hist && lean_set_item(ctx, keys[S_HIST], PyLong_FromLong(hist))) ? -1 : 0;
}

/* decode.py's sockaddr(): a dict, or None when shorter than a family */
static PyObject *sockaddr(const uint8_t *p, Py_ssize_t n)
{
    if (n < 2)
        Py_RETURN_NONE;
    uint16_t family;
    memcpy(&family, p, 2);
    long port = n >= 4 ? (p[2] << 8 | p[3]) : 0;
    if ((family == AF_INET && n >= 8) || (family == AF_INET6 && n >= 24))
        return Py_BuildValue("{sssNsl}", "family", family == AF_INET ? "ipv4" : "ipv6", "ip",
                             ip_text(family, p + (family == AF_INET ? 4 : 8)), "port", port);
    if (family == AF_UNIX) {
        const char *path = (const char *)p + 2;
        Py_ssize_t len = n - 2, skip = len > 0 && path[0] == 0;
        Py_ssize_t end = skip;
        while (end < len && path[end])
            end++;
        PyObject *name = PyUnicode_DecodeUTF8(path + skip, end - skip, "replace");
        if (name != NULL && skip)
            Py_SETREF(name, PyUnicode_FromFormat("@%U", name));
        return name ? Py_BuildValue("{sssN}", "family", "unix", "path", name) : NULL;
    }
    return Py_BuildValue("{sN}", "family", PyUnicode_FromFormat("%u", family));
}

/* decode.py's addr_text() */
static PyObject *addr_text(PyObject *sa)
{
    if (sa == Py_None)
        Py_RETURN_NONE;
    PyObject *ip = PyDict_GetItemWithError(sa, keys[S_IP]);
    if (ip != NULL)
        return PyUnicode_FromFormat("%U:%S", ip, PyDict_GetItem(sa, keys[S_PORT]));
    PyObject *path = PyErr_Occurred() ? NULL : PyDict_GetItemWithError(sa, keys[S_PATH]);
    return path ? Py_NewRef(path) : PyErr_Occurred() ? NULL : PyUnicode_FromString("");
}

/* decode.py's _tuple_text(): "local->remote" (or reversed), None without a tuple */
static PyObject *tuple_text(PyObject *ctx, int client_is_local)
{
    PyObject *lip = PyDict_GetItem(ctx, keys[S_LIP]);
    if (lip == NULL)
        Py_RETURN_NONE;
    PyObject *l = PyUnicode_FromFormat("%U:%S", lip, PyDict_GetItem(ctx, keys[S_LPORT]));
    PyObject *r = PyUnicode_FromFormat("%U:%S", PyDict_GetItem(ctx, keys[S_RIP]),
                                       PyDict_GetItem(ctx, keys[S_RPORT]));
    PyObject *out = l && r ? PyUnicode_FromFormat("%U->%U", client_is_local ? l : r,
                                                  client_is_local ? r : l) : NULL;
    Py_XDECREF(l);
    Py_XDECREF(r);
    return out;
}

static PyObject *s32(uint64_t v) { return PyLong_FromLong((int32_t)(uint32_t)v); }

static int build(PyObject *args, PyObject *ctx, PyObject *sa, const struct hdr *h, int mode)
{
    PyObject *res = PyLong_FromLongLong(h->ret);
    int rc;
    if (mode == SOCK_CONNECT || mode == SOCK_BIND)
        rc = lean_set_item(args, keys[S_RES], res) ||
             (mode == SOCK_CONNECT && lean_set_item(args, keys[S_TUPLE], tuple_text(ctx, 1))) ||
             lean_set_item(args, keys[S_FD], s32(h->args[0])) ||
             lean_set_item(args, keys[S_ADDR], addr_text(sa));
    else if (mode == SOCK_IO)
        rc = lean_set_item(args, keys[S_RES], res) ||
             lean_set_item(args, keys[S_DATA], Py_NewRef(Py_None)) ||
             lean_set_item(args, keys[S_FD], s32(h->args[0])) ||
             lean_set_item(args, keys[S_SIZE], PyLong_FromUnsignedLong((uint32_t)h->args[2])) ||
             lean_set_item(args, keys[S_TUPLE], tuple_text(ctx, 1));
    else {
        rc = lean_set_item(args, keys[S_FD], res) ||
             lean_set_item(args, keys[S_TUPLE], tuple_text(ctx, 0)) ||
             lean_set_item(args, keys[S_QPCT], Py_NewRef(Py_None)) ||
             lean_set_item(args, keys[S_QLEN], Py_NewRef(Py_None)) ||
             lean_set_item(args, keys[S_QMAX], Py_NewRef(Py_None)) ||
             lean_set_item(ctx, keys[S_LISTEN_FD], s32(h->args[0]));
        PyObject *fam = sa != Py_None ? PyDict_GetItem(sa, keys[S_FAMILY]) : NULL;
        if (!rc && fam && !PyDict_GetItem(ctx, keys[S_LIP]) &&
            PyUnicode_CompareWithASCIIString(fam, "unix") == 0)
            rc = lean_set_item(ctx, keys[S_UNIX_PATH], Py_NewRef(PyDict_GetItem(sa, keys[S_PATH])));
        if (!rc && mode == SOCK_ACCEPT4)
            rc = lean_set_item(args, keys[S_FLAGS], s32(h->args[3]));
    }
    return rc ? -1 : 0;
}

PyObject *lean_sock(const struct hdr *h, const char *body, int mode, PyObject *ctx)
{
    const uint8_t *p = (const uint8_t *)body;
    PyObject *sa = NULL, *args = NULL;
    if ((h->kind & K_TUPLE) && put_tuple(ctx, p) < 0)
        return NULL;
    if (h->kind & K_TUPLE)
        p += TUPLE_SIZE;
    p += (Py_ssize_t)h->len[0] + h->len[1] + h->len[2];
    if (h->len[3]) {
        if ((sa = sockaddr(p, h->len[3])) == NULL ||
            PyDict_SetItem(ctx, keys[S_SOCKADDR], sa) < 0)
            goto out;
    } else {
        sa = Py_NewRef(Py_None);
    }
    if ((args = PyDict_New()) != NULL && build(args, ctx, sa, h, mode) < 0)
        Py_CLEAR(args);
out:
    Py_XDECREF(sa);
    return args;
}
