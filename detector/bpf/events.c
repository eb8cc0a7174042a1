// falcoctl-py kernel event source: syscall exits as Falco events, through a BPF ring buffer.
//
// Tracepoints only. One generic enter and one generic exit program are attached to the
// per-syscall tracepoints syscalls:sys_enter_X / sys_exit_X of every syscall the source can
// decode; their records share one layout (nr at 8, args or ret from 16), so a program never
// names a syscall's own fields. raw_syscalls:sys_exit feeds init_module/finit_module, which have
// no per-syscall tracepoints on kernels without module support. sched:sched_process_exit gives
// procexit.
//
// The `spec` map (one u32 per syscall number, written by userspace from
// detector/sources/syscalls.py) says what to capture and whether the syscall is selected:
// changing the selected set is a map update, never a reload.
//
// Kernel structs are read at offsets that Python computes from BTF and passes as -D OFF_*
// flags: the headers BCC compiles with are never trusted for a struct layout.

#include <uapi/linux/ptrace.h>

#include "events.h"

struct inflight {
    u64 args[6];
    u32 nr;
};

struct buf {
    struct hdr h;
    u8 raw[BUF_SIZE];
};

struct fname {
    char s[STR_MAX];
};

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_ARRAY(spec, u32, 512);
BPF_ARRAY(config, u32, 4);             // [0] own tgid (skipped), [1] 1 = module syscalls on
BPF_PERCPU_ARRAY(counters, u64, 4);    // [0] records offered, [1] drops (ringbuf full)
BPF_PERCPU_ARRAY(scratch, struct buf, 1);
BPF_TABLE("lru_hash", u32, struct inflight, inflight, 16384);
BPF_TABLE("lru_hash", u32, struct fname, execfn, 1024);

struct sys_rec {
    u64 common;
    int nr;          // int __syscall_nr on syscalls:*, low half of long id on raw_syscalls
    int pad;
    u64 a0;          // first arg, or ret on exits
};

static __always_inline void *rd_ptr(void *base, int off)
{
    void *p = 0;
    if (off < 0 || !base)
        return 0;
    bpf_probe_read_kernel(&p, sizeof(p), base + off);
    return p;
}

static __always_inline u32 rd_u32(void *base, int off)
{
    u32 v = 0;
    if (off >= 0 && base)
        bpf_probe_read_kernel(&v, sizeof(v), base + off);
    return v;
}

static __always_inline int own_tgid(u32 tgid)
{
    int k = 0;
    u32 *self = config.lookup(&k);
    return self && *self == tgid;
}

static __always_inline void count(int idx)
{
    u64 *c = counters.lookup(&idx);
    if (c)
        *c += 1;
}

int sys_enter(struct sys_rec *ctx)
{
    u32 nr = (u32)ctx->nr;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (nr >= 512)
        return 0;
    u32 *sp = spec.lookup(&nr);
    if (!sp || !(*sp & F_ENABLED))
        return 0;
    u32 spec_v = *sp;
    if (own_tgid(pid_tgid >> 32))
        return 0;
    struct inflight inf = {};
    inf.nr = nr;
    bpf_probe_read_kernel(&inf.args, sizeof(inf.args), (void *)ctx + 16);
    u32 tid = (u32)pid_tgid;
    inflight.update(&tid, &inf);
    if (spec_v & F_EXEC) {
        int idx = SPEC_ARG(spec_v, S_STR0);
        int z = 0;
        struct buf *b = scratch.lookup(&z);
        if (b && idx >= 0 && idx < 6) {
            struct fname *fn = (struct fname *)b->raw;
            fn->s[0] = 0;
            bpf_probe_read_user_str(fn->s, STR_MAX, (void *)inf.args[idx]);
            execfn.update(&tid, fn);
        }
    }
    return 0;
}

static __always_inline void fill_proc(struct proc_ctx *p, void *task)
{
    p->loginuid = rd_u32(task, OFF_TASK_LOGINUID);
    p->sessionid = rd_u32(task, OFF_TASK_SESSIONID);
    void *signal = rd_ptr(task, OFF_TASK_SIGNAL);
    void *tty = rd_ptr(signal, OFF_SIGNAL_TTY);
    if (tty) {
        u32 index = rd_u32(tty, OFF_TTY_INDEX);
        void *drv = rd_ptr(tty, OFF_TTY_DRIVER);
        p->tty_major = rd_u32(drv, OFF_DRIVER_MAJOR);
        p->tty_minor = rd_u32(drv, OFF_DRIVER_MINOR_START) + index;
    }
    void *pid = rd_ptr(task, OFF_TASK_THREAD_PID);
    if (pid) {
        u32 level = rd_u32(pid, OFF_PID_LEVEL);
        p->vtid_level = level;
        p->vpid = rd_u32(pid, OFF_PID_NUMBERS + (level & 31) * SIZEOF_UPID);
    }
    void *cred = rd_ptr(task, OFF_TASK_CRED);
    p->euid = rd_u32(cred, OFF_CRED_EUID);
    p->egid = rd_u32(cred, OFF_CRED_EGID);
    if (cred) {
        bpf_probe_read_kernel(&p->cap_inh, 8, cred + OFF_CRED_CAP_INH);
        bpf_probe_read_kernel(&p->cap_prm, 8, cred + OFF_CRED_CAP_PRM);
        bpf_probe_read_kernel(&p->cap_eff, 8, cred + OFF_CRED_CAP_EFF);
    }
    void *mm = rd_ptr(task, OFF_TASK_MM);
    void *exe = rd_ptr(mm, OFF_MM_EXE_FILE);
    if (exe) {
        void *inode = rd_ptr(exe, OFF_FILE_INODE);
        if (inode) {
            bpf_probe_read_kernel(&p->exe_ino, 8, inode + OFF_INODE_INO);
#if OFF_INODE_CTIME >= 0
            bpf_probe_read_kernel(&p->exe_ctime, 8, inode + OFF_INODE_CTIME);
#endif
#if OFF_INODE_MTIME >= 0
            bpf_probe_read_kernel(&p->exe_mtime, 8, inode + OFF_INODE_MTIME);
#endif
            void *sb = rd_ptr(inode, OFF_INODE_SB);
            p->exe_dev = rd_u32(sb, OFF_SB_DEV);
            u64 magic = 0;
            if (sb)
                bpf_probe_read_kernel(&magic, 8, sb + OFF_SB_MAGIC);
#if OFF_OVL_UPPER >= 0
            if (magic == 0x794c7630) {
                p->exe_flags |= 2;
                if (rd_ptr(inode - OFF_OVL_VFS_INODE, OFF_OVL_UPPER))
                    p->exe_flags |= 1;
            }
#endif
        }
        void *dentry = rd_ptr(exe, OFF_FILE_DENTRY);
        void *name = rd_ptr(dentry, OFF_DENTRY_NAME);
        if (name)
            bpf_probe_read_kernel_str(p->exe_dname, sizeof(p->exe_dname), name);
    }
    p->cgroup_id = bpf_get_current_cgroup_id();
}

static __always_inline int fill_tuple(struct tuple *t, void *task, s64 fd)
{
    if (fd < 0 || fd > 1048576)
        return 0;
    void *files = rd_ptr(task, OFF_TASK_FILES);
    void *fdt = rd_ptr(files, OFF_FILES_FDT);
    void **fds = rd_ptr(fdt, OFF_FDT_FD);
    if (!fds)
        return 0;
    void *file = 0;
    bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
    void *sock = rd_ptr(file, OFF_FILE_PRIVATE);
    void *sk = rd_ptr(sock, OFF_SOCKET_SK);
    if (!sk)
        return 0;
    u16 family = 0, lport = 0, dport = 0;
    bpf_probe_read_kernel(&family, 2, sk + OFF_SK_FAMILY);
    if (family != 2 && family != 10)
        return 0;
    t->family = family;
    bpf_probe_read_kernel(&t->type, 2, sk + OFF_SK_TYPE);
    bpf_probe_read_kernel(&t->proto, 2, sk + OFF_SK_PROTOCOL);
    bpf_probe_read_kernel(&lport, 2, sk + OFF_SK_NUM);
    bpf_probe_read_kernel(&dport, 2, sk + OFF_SK_DPORT);
    t->lport = lport;
    t->rport = (dport >> 8) | (dport << 8);
    if (family == 2) {
        bpf_probe_read_kernel(t->laddr, 4, sk + OFF_SK_RCV_SADDR);
        bpf_probe_read_kernel(t->raddr, 4, sk + OFF_SK_DADDR);
    } else {
        bpf_probe_read_kernel(t->laddr, 16, sk + OFF_SK_V6_RCV_SADDR);
        bpf_probe_read_kernel(t->raddr, 16, sk + OFF_SK_V6_DADDR);
    }
    return 1;
}

static __always_inline u32 put_str(struct buf *b, u32 off, const void *uptr, int user)
{
    int n;
    if (!uptr)
        return 0;
    if (user)
        n = bpf_probe_read_user_str(&b->raw[off & OFF_MASK], STR_MAX, uptr);
    else
        n = bpf_probe_read_kernel_str(&b->raw[off & OFF_MASK], STR_MAX, uptr);
    return n > 0 ? n : 0;
}

static __always_inline int submit(struct buf *b, u32 off)
{
    u32 size = sizeof(struct hdr) + (off & OFF_MASK);
    b->h.size = size;
    if (size > sizeof(struct buf))
        size = sizeof(struct buf);
    count(0);
    if (events.ringbuf_output(b, size, 0) != 0)
        count(1);
    return 0;
}

static __always_inline void fill_hdr(struct buf *b, u64 pid_tgid, u32 nr, s64 ret)
{
    void *task = (void *)bpf_get_current_task();
    b->h.ts = bpf_ktime_get_boot_ns();
    b->h.pid_tgid = pid_tgid;
    b->h.ret = ret;
    b->h.uid_gid = bpf_get_current_uid_gid();
    b->h.nr = nr;
    b->h.ppid = rd_u32(rd_ptr(task, OFF_TASK_REAL_PARENT), OFF_TASK_TGID);
    b->h.len[0] = b->h.len[1] = b->h.len[2] = b->h.len[3] = 0;
    b->h.kind = 0;
    b->h.cpu = bpf_get_smp_processor_id();
    bpf_get_current_comm(&b->h.comm, sizeof(b->h.comm));
}

int sys_exit(struct sys_rec *ctx)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid;
    struct inflight *inf = inflight.lookup(&tid);
    if (!inf)
        return 0;
    u32 nr = inf->nr;
    if (nr != (u32)ctx->nr || nr >= 512) {
        inflight.delete(&tid);
        return 0;
    }
    u32 *sp = spec.lookup(&nr);
    if (!sp)
        return 0;
    u32 sv = *sp;
    int z = 0;
    struct buf *b = scratch.lookup(&z);
    if (!b)
        return 0;
    s64 ret = (s64)ctx->a0;
    fill_hdr(b, pid_tgid, nr, ret);
    __builtin_memcpy(b->h.args, inf->args, sizeof(b->h.args));
    inflight.delete(&tid);
    void *task = (void *)bpf_get_current_task();
    u32 off = 0;
    if (sv & F_PROC) {
        struct proc_ctx *p = (struct proc_ctx *)b->raw;
        __builtin_memset(p, 0, sizeof(*p));
        fill_proc(p, task);
        b->h.kind |= K_PROC;
        off += sizeof(struct proc_ctx);
    }
    if (sv & (F_TUPLE_ARG0 | F_TUPLE_RET)) {
        s64 fd = (sv & F_TUPLE_RET) ? ret : (s64)b->h.args[0];
        struct tuple *t = (struct tuple *)&b->raw[off & OFF_MASK];
        if ((off & OFF_MASK) <= BUF_SIZE - sizeof(struct tuple)) {
            __builtin_memset(t, 0, sizeof(*t));
            if (fill_tuple(t, task, fd)) {
                b->h.kind |= K_TUPLE;
                off += sizeof(struct tuple);
            }
        }
    }
    int ui = SPEC_ARG(sv, S_UBUF);
    if (ui >= 0 && ui < 6) {
        b->h.ubuf[0] = b->h.ubuf[1] = b->h.ubuf[2] = 0;
        if (bpf_probe_read_user(b->h.ubuf, sizeof(b->h.ubuf), (void *)b->h.args[ui]) == 0 ||
            bpf_probe_read_user(b->h.ubuf, 8, (void *)b->h.args[ui]) == 0)
            b->h.kind |= K_UBUF;
    }
    // Strings: str0 (the file name execve got, saved at enter), str1, str2.
    if (sv & F_EXEC) {
        struct fname *fn = execfn.lookup(&tid);
        if (fn) {
            b->h.len[0] = put_str(b, off, fn->s, 0);
            off += b->h.len[0];
            execfn.delete(&tid);
        }
        if (ret == 0) {  // the new image: argv from mm->arg_start..arg_end
            void *mm = rd_ptr(task, OFF_TASK_MM);
            u64 start = (u64)rd_ptr(mm, OFF_MM_ARG_START);
            u64 end = (u64)rd_ptr(mm, OFF_MM_ARG_END);
            u64 len = end > start ? end - start : 0;
            if (len > ARGS_MAX - 1)
                len = ARGS_MAX - 1;
            asm volatile("%0 &= 1023" : "+r"(len));  // a bound the verifier sees
            if (len && bpf_probe_read_user(&b->raw[off & OFF_MASK], len, (void *)start) == 0) {
                b->h.len[1] = len;
                off += len;
            }
        }
    } else {
        int i0 = SPEC_ARG(sv, S_STR0), i1 = SPEC_ARG(sv, S_STR1), i2 = SPEC_ARG(sv, S_STR2);
        if (i0 >= 0 && i0 < 6) {
            b->h.len[0] = put_str(b, off, (void *)b->h.args[i0], 1);
            off += b->h.len[0];
        }
        if (i1 >= 0 && i1 < 6) {
            b->h.len[1] = put_str(b, off, (void *)b->h.args[i1], 1);
            off += b->h.len[1];
        }
        if (i2 >= 0 && i2 < 6) {
            b->h.len[2] = put_str(b, off, (void *)b->h.args[i2], 1);
            off += b->h.len[2];
        }
    }
    int sa = SPEC_ARG(sv, S_SA), sl = SPEC_ARG(sv, S_SALEN);
    if (sa >= 0 && sa < 6 && sl >= 0 && sl < 6) {
        u64 addr = b->h.args[sa];
        u64 alen = b->h.args[sl];
        if (sv & F_MSGHDR) {  // struct msghdr { void *msg_name; int msg_namelen; ... }
            u64 mh[2] = {};
            bpf_probe_read_user(mh, sizeof(mh), (void *)addr);
            addr = mh[0];
            alen = (u32)mh[1];
        } else if (sv & F_SALEN_PTR) {
            u32 l = 0;
            bpf_probe_read_user(&l, 4, (void *)alen);
            alen = l;
        }
        if (addr && alen) {
            u64 l = alen > SA_MAX ? SA_MAX : alen;
            asm volatile("%0 &= 127" : "+r"(l));
            if (l && bpf_probe_read_user(&b->raw[off & OFF_MASK], l, (void *)addr) == 0) {
                b->h.len[3] = l;
                off += l;
            }
        }
    }
    return submit(b, off);
}

// init_module / finit_module: raw_syscalls:sys_exit, no arguments (see module docstring).
int raw_exit(struct sys_rec *ctx)
{
    u32 nr = (u32)ctx->nr;
    if (nr != 175 && nr != 313)
        return 0;
    u32 *sp = spec.lookup(&nr);
    if (!sp || !(*sp & F_ENABLED))
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (own_tgid(pid_tgid >> 32))
        return 0;
    int z = 0;
    struct buf *b = scratch.lookup(&z);
    if (!b)
        return 0;
    fill_hdr(b, pid_tgid, nr, (s64)ctx->a0);
    __builtin_memset(b->h.args, 0, sizeof(b->h.args));
    return submit(b, 0);
}

// sched:sched_process_exit: Falco's procexit, for every thread that ends.
int proc_exit(void *ctx)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 nr = SPEC_PROCEXIT;
    u32 *sp = spec.lookup(&nr);
    if (!sp || !(*sp & F_ENABLED))
        return 0;
    if (own_tgid(pid_tgid >> 32))
        return 0;
    int z = 0;
    struct buf *b = scratch.lookup(&z);
    if (!b)
        return 0;
    fill_hdr(b, pid_tgid, NR_PROCEXIT, 0);
    __builtin_memset(b->h.args, 0, sizeof(b->h.args));
    return submit(b, 0);
}
