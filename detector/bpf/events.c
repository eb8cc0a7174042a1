// falcoctl-py kernel event source: syscall exits as Falco events, through a BPF ring buffer.
//
// Tracepoints only (this kind of machine has no kprobes, and fentry/fexit are refused).
// Three entry points share one body, `on_exit`:
// - `sys_exit_tp`, one tracepoint program attached to `syscalls:sys_exit_<name>` of each
//   selected syscall only (userspace attaches and detaches it as the selection changes), so an
//   unselected syscall never runs a program; the arguments come from the task's saved
//   registers (bpf_task_pt_regs), still intact at exit;
// - `sys_exit`, a raw tracepoint (BTF-typed, tp_btf, where the kernel allows) on
//   raw_syscalls' sys_exit, attached only while a selected syscall has no tracepoint of its
//   own here (init_module/finit_module on a kernel without module support), or when one hook
//   for every syscall is asked for; it takes the syscalls whose spec word has F_RAW_HOOK;
// - `proc_exit`, a raw tracepoint on sched_process_exit: procexit.
// No enter program and no per-thread map: after a successful execve the new image's argv,
// environment and file name are read from its own mm (the file name sits at env_end).
//
// The `spec` map (one u32 per syscall number, written by userspace from
// detector/sources/syscalls.py) says what to capture and whether the syscall is selected.
// Before a record is filled, the kernel filter derived from the rules (kfilter.h) may drop
// the event: its clauses over the result, the open flags and the path argument.
//
// Kernel structs are read at offsets that Python computes from BTF and passes as -D OFF_*
// flags: the headers BCC compiles with are never trusted for a struct layout. SELF_TGID (-D,
// 0 for none) is the consumer's own process, whose syscalls are skipped.
//
// Records are submitted without a wakeup (BPF_RB_NO_WAKEUP): a wakeup costs the traced
// process an irq_work and a cross-CPU wake; the reader looks at the producer position every
// 0.5..30 ms instead. Once a ring holds 1/WAKE_SHARE of its size unread, each record forces a
// wakeup (BPF_RB_FORCE_WAKEUP), so a reader asleep in epoll on the ring wakes long before
// the ring is full (`submit`).
//
// Ring buffers: N_RINGS (-D, default 1) of RINGBUF_PAGES pages each. `events` is ring 0 and
// the template of `rings`, an array of maps (written through even with one ring), whose
// slot i userspace fills with the ring of CPUs i*CPUS_PER_RING..(i+1)*CPUS_PER_RING-1
// (detector/bpf/rings.py creates rings 1..N-1), so CPUs do not share a ring's lock; a CPU
// without a ring counts its records as dropped.

#include <uapi/linux/ptrace.h>

#include "events.h"

// The hot reads (the syscall number and arguments in the saved registers, the thread's
// TS_COMPAT status, parent and comm): with TP_BTF these are plain loads through BTF-typed
// pointers, checked by the verifier, no helper call (`sys_exit` is then a tp_btf program,
// loaded by detector/bpf/loader.py, and `sys_exit_tp` gets its registers as a BTF pointer
// from bpf_task_pt_regs); without it, bpf_probe_read_kernel calls. Inline asm, so BCC's
// rewriter leaves them alone.
#define BTF_LD64(dst, base, off) \
    asm volatile("%0 = *(u64 *)(%1 + %2)" : "=r"(dst) : "r"(base), "i"(off))
#ifdef TP_BTF
#define LD64(dst, base, off) BTF_LD64(dst, base, off)
#define LD32(dst, base, off) \
    asm volatile("%0 = *(u32 *)(%1 + %2)" : "=r"(dst) : "r"(base), "i"(off))
#define CURRENT_TASK() ((void *)bpf_get_current_task_btf())
#else
#define LD64(dst, base, off) bpf_probe_read_kernel(&(dst), 8, (void *)(base) + (off))
#define LD32(dst, base, off) bpf_probe_read_kernel(&(dst), 4, (void *)(base) + (off))
#define CURRENT_TASK() ((void *)bpf_get_current_task())
#endif
// `x &= mask` in a form the compiler cannot fold away: the bound the verifier needs to see.
#define BOUND(x, mask) asm volatile("%0 &= %1" : "+r"(x) : "i"(mask))

struct buf {
    struct hdr h;
    u8 raw[BUF_SIZE];
};

// The record of a syscalls:sys_exit_<name> tracepoint (its format file in tracefs).
struct sys_exit_tp_args {
    u64 common;      // common_type, common_flags, common_preempt_count, common_pid
    s32 nr;          // __syscall_nr
    u32 pad;
    s64 ret;
};

#ifndef N_RINGS
#define N_RINGS 1
#define CPUS_PER_RING 1
#endif
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
// Also with one ring: BCC 0.26 has no `events.ringbuf_query`, and bpf_ringbuf_query needs
// the map pointer that a lookup here gives.
BPF_ARRAY_OF_MAPS(rings, "events", N_RINGS);
BPF_ARRAY(spec, u32, NR_SYSCALLS);
BPF_PERCPU_ARRAY(counters, u64, N_COUNTERS);
BPF_PERCPU_ARRAY(scratch, struct buf, 1);

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

static __always_inline void count(int idx)
{
    u64 *c = counters.lookup(&idx);
    if (c)
        *c += 1;
}

static __always_inline void fill_tty(struct proc_ctx *p, void *task)
{
    void *tty = rd_ptr(rd_ptr(task, OFF_TASK_SIGNAL), OFF_SIGNAL_TTY);
    if (!tty)
        return;
    u32 index = rd_u32(tty, OFF_TTY_INDEX);
    void *drv = rd_ptr(tty, OFF_TTY_DRIVER);
    p->tty_major = rd_u32(drv, OFF_DRIVER_MAJOR);
    p->tty_minor = rd_u32(drv, OFF_DRIVER_MINOR_START) + index;
}

static __always_inline void fill_creds(struct proc_ctx *p, void *task)
{
    void *pid = rd_ptr(task, OFF_TASK_THREAD_PID);
    if (pid) {
        u32 level = rd_u32(pid, OFF_PID_LEVEL);
        p->vtid_level = level;
        p->vpid = rd_u32(pid, OFF_PID_NUMBERS + (level & PID_LEVEL_MASK) * SIZEOF_UPID);
    }
    void *cred = rd_ptr(task, OFF_TASK_CRED);
    p->euid = rd_u32(cred, OFF_CRED_EUID);
    p->egid = rd_u32(cred, OFF_CRED_EGID);
    if (cred) {
        bpf_probe_read_kernel(&p->cap_inh, 8, cred + OFF_CRED_CAP_INH);
        bpf_probe_read_kernel(&p->cap_prm, 8, cred + OFF_CRED_CAP_PRM);
        bpf_probe_read_kernel(&p->cap_eff, 8, cred + OFF_CRED_CAP_EFF);
    }
}

// The executable's inode facts: number, times, device, overlayfs layer.
static __always_inline void fill_exe_inode(struct proc_ctx *p, void *inode)
{
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
    if (magic == OVERLAYFS_SUPER_MAGIC) {
        p->exe_flags |= EXE_OVERLAY;
        if (rd_ptr(inode - OFF_OVL_VFS_INODE, OFF_OVL_UPPER))
            p->exe_flags |= EXE_UPPER_LAYER;
    }
#endif
}

static __always_inline void fill_exe(struct proc_ctx *p, void *task)
{
    void *exe = rd_ptr(rd_ptr(task, OFF_TASK_MM), OFF_MM_EXE_FILE);
    if (!exe)
        return;
    void *inode = rd_ptr(exe, OFF_FILE_INODE);
    if (inode)
        fill_exe_inode(p, inode);
    void *name = rd_ptr(rd_ptr(exe, OFF_FILE_DENTRY), OFF_DENTRY_NAME);
    if (name)
        bpf_probe_read_kernel_str(p->exe_dname, sizeof(p->exe_dname), name);
}

// One component of the cgroup v2 path into cgroup[i]; the parent kernfs node.
static __always_inline void *cg_level(struct proc_ctx *p, void *kn, int i)
{
    if (!kn)
        return 0;
    void *name = rd_ptr(kn, OFF_KN_NAME);
    if (name)
        bpf_probe_read_kernel_str(p->cgroup[i], sizeof(p->cgroup[i]), name);
    return rd_ptr(kn, OFF_KN_PARENT);
}

// The last CG_LEVELS components of the task's cgroup v2 path, innermost first.
_Static_assert(CG_LEVELS == 4, "fill_cgroup walks four levels");
static __always_inline void fill_cgroup(struct proc_ctx *p, void *task)
{
    p->cgroup_id = bpf_get_current_cgroup_id();
#if OFF_CSS_SET_DFL_CGRP >= 0 && OFF_KN_PARENT >= 0
    void *kn = rd_ptr(rd_ptr(rd_ptr(task, OFF_TASK_CGROUPS), OFF_CSS_SET_DFL_CGRP),
                      OFF_CGROUP_KN);
    kn = cg_level(p, kn, 0);
    kn = cg_level(p, kn, 1);
    kn = cg_level(p, kn, 2);
    cg_level(p, kn, 3);
#endif
}

static __always_inline void fill_proc(struct proc_ctx *p, void *task)
{
    p->loginuid = rd_u32(task, OFF_TASK_LOGINUID);
    p->sessionid = rd_u32(task, OFF_TASK_SESSIONID);
    fill_tty(p, task);
    fill_creds(p, task);
    fill_exe(p, task);
    fill_cgroup(p, task);
#if OFF_TASK_START_BOOTTIME >= 0
    bpf_probe_read_kernel(&p->start_ts, 8, task + OFF_TASK_START_BOOTTIME);
#endif
}

// Whether the task is a vfork child that has not exec'd yet: its caller waits on vfork_done
// until the child execs or exits (the kernel clears it then, before the syscall returns).
static __always_inline int vfork_child(void *task)
{
#if OFF_TASK_VFORK_DONE >= 0
    return rd_ptr(task, OFF_TASK_VFORK_DONE) != 0;
#else
    return 0;
#endif
}

// The `struct file` behind `fd` of `task` (files -> fdt -> fd[fd]); 0 if there is none.
static __always_inline void *fd_file(void *task, s64 fd)
{
    if (fd < 0 || fd > FD_MAX)
        return 0;
    void **fds = rd_ptr(rd_ptr(rd_ptr(task, OFF_TASK_FILES), OFF_FILES_FDT), OFF_FDT_FD);
    if (!fds)
        return 0;
    void *file = 0;
    bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
    return file;
}

// The kernel socket (struct sock *) behind `fd` and its inode number; 0 if there is none.
static __always_inline void *fd_sock(void *task, s64 fd, u64 *ino)
{
    void *file = fd_file(task, fd);
    void *sk = rd_ptr(rd_ptr(file, OFF_FILE_PRIVATE), OFF_SOCKET_SK);
    void *inode = sk ? rd_ptr(file, OFF_FILE_INODE) : 0;
    *ino = 0;
    if (inode)
        bpf_probe_read_kernel(ino, 8, inode + OFF_INODE_INO);
    return sk;
}

// Both ends of the IPv4/IPv6 socket behind `fd`, from the kernel socket, and its inode number;
// 0 if it is none.
static __always_inline int fill_tuple(struct tuple *t, void *task, s64 fd)
{
    u64 ino = 0;
    void *sk = fd_sock(task, fd, &ino);
    if (!sk)
        return 0;
    t->ino = (u32)ino;
    u16 family = 0, lport = 0, dport = 0;
    bpf_probe_read_kernel(&family, 2, sk + OFF_SK_FAMILY);
    if (family != FAM_INET && family != FAM_INET6)
        return 0;
    t->family = family;
    bpf_probe_read_kernel(&t->type, 2, sk + OFF_SK_TYPE);
    bpf_probe_read_kernel(&t->proto, 2, sk + OFF_SK_PROTOCOL);
    bpf_probe_read_kernel(&lport, 2, sk + OFF_SK_NUM);
    bpf_probe_read_kernel(&dport, 2, sk + OFF_SK_DPORT);
    t->lport = lport;
    t->rport = (dport >> 8) | (dport << 8);
    if (family == FAM_INET) {
        bpf_probe_read_kernel(t->laddr, 4, sk + OFF_SK_RCV_SADDR);
        bpf_probe_read_kernel(t->raddr, 4, sk + OFF_SK_DADDR);
    } else {
        bpf_probe_read_kernel(t->laddr, 16, sk + OFF_SK_V6_RCV_SADDR);
        bpf_probe_read_kernel(t->raddr, 16, sk + OFF_SK_V6_DADDR);
    }
    return 1;
}

#include "kfilter.h"

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

// User memory [start, end) of at most ARGS_MAX - 1 bytes at `off`; its length (0 on failure).
static __always_inline u32 put_span(struct buf *b, u32 off, u64 start, u64 end)
{
    u64 len = end > start ? end - start : 0;
    if (len > ARGS_MAX - 1)
        len = ARGS_MAX - 1;
    BOUND(len, ARGS_MASK);
    if (len && bpf_probe_read_user(&b->raw[off & OFF_MASK], len, (void *)start) == 0)
        return len;
    return 0;
}

// A ring's unread bytes past which a record wakes the reader: a quarter of the ring, so a
// reader asleep for its longest wait still has three quarters of it to drain into.
#ifndef WAKE_SHARE
#define WAKE_SHARE 4
#endif
#define WAKE_MARK ((u64)RINGBUF_PAGES * PAGE_SIZE / WAKE_SHARE)
// Per CPU and ring: 1 + the consumer position at this CPU's last forced wake-up. A reader that
// has released nothing since is woken already (the wake-up stays latched in its edge-triggered
// epoll, and a woken reader reads, so it releases), so the next one waits for the consumer to
// move: at most one irq_work per CPU per batch the reader releases, not one per record above
// the mark (each is a self-IPI that takes CPU from whatever runs there, the reader included).
BPF_PERCPU_ARRAY(woke_at, u64, N_RINGS);

static __always_inline int submit(struct buf *b, u32 off, u32 sv)
{
    u32 size = sizeof(struct hdr) + (off & OFF_MASK);
    b->h.size = size;
    if (size > sizeof(struct buf))
        size = sizeof(struct buf);
    count(CNT_OFFERED);
#if N_RINGS > 1
    u32 ring = bpf_get_smp_processor_id() / CPUS_PER_RING;
#else
    u32 ring = 0;
#endif
    void *rb = rings.lookup(&ring);
    long err = -1;  // no ring in the slot (a CPU without one): counted as dropped
    if (rb) {
        u64 flags = BPF_RB_NO_WAKEUP;
        if (bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA) + size >= WAKE_MARK) {
            u64 cons = bpf_ringbuf_query(rb, BPF_RB_CONS_POS) + 1;
            u64 *last = woke_at.lookup(&ring);
            if (!last || *last != cons) {
                if (last)
                    *last = cons;
                flags = BPF_RB_FORCE_WAKEUP;
            }
        }
        err = bpf_ringbuf_output(rb, b, size, flags);
    }
    if (err != 0) {
        count(CNT_DROPS);
        count(CNT_DROPCAT + ((sv >> S_DROPCAT) & (N_DROPCATS - 1)));
    }
    return 0;
}

static __always_inline void fill_hdr(struct buf *b, u64 pid_tgid, u32 nr, s64 ret)
{
    void *task = CURRENT_TASK();
    void *parent = 0;
    u32 ppid = 0;
    LD64(parent, task, OFF_TASK_REAL_PARENT);
    if (parent)
        LD32(ppid, parent, OFF_TASK_TGID);
    b->h.ppid = ppid;
    b->h.ts = bpf_ktime_get_boot_ns();
    b->h.pid_tgid = pid_tgid;
    b->h.ret = ret;
    b->h.uid_gid = bpf_get_current_uid_gid();
    b->h.nr = nr;
    b->h.len[0] = b->h.len[1] = b->h.len[2] = b->h.len[3] = 0;
    b->h.kind = 0;
    b->h.cpu = bpf_get_smp_processor_id();
#if defined(TP_BTF) && OFF_TASK_COMM >= 0
    LD64(*(u64 *)&b->h.comm[0], task, OFF_TASK_COMM);  // the 16 bytes of task->comm
    LD64(*(u64 *)&b->h.comm[8], task, OFF_TASK_COMM + 8);
#else
    bpf_get_current_comm(&b->h.comm, sizeof(b->h.comm));
#endif
}

static __always_inline void fill_args(struct buf *b, void *regs)
{
    LD64(b->h.args[0], regs, OFF_REGS_DI);
    LD64(b->h.args[1], regs, OFF_REGS_SI);
    LD64(b->h.args[2], regs, OFF_REGS_DX);
    LD64(b->h.args[3], regs, OFF_REGS_R10);
    LD64(b->h.args[4], regs, OFF_REGS_R8);
    LD64(b->h.args[5], regs, OFF_REGS_R9);
}

// The process context and the socket tuple the spec word asks for; the new offset.
static __always_inline u32 put_ctx(struct buf *b, void *task, u32 sv, s64 ret)
{
    u32 off = 0;
    int vforked = vfork_child(task);
    if ((sv & F_PROC) || vforked) {
        struct proc_ctx *p = (struct proc_ctx *)b->raw;
        __builtin_memset(p, 0, sizeof(*p));
        fill_proc(p, task);
        b->h.kind |= K_PROC | (vforked ? K_VFORK : 0);
        off += sizeof(struct proc_ctx);
    }
    if (sv & (F_TUPLE_ARG0 | F_TUPLE_RET)) {
        s64 fd = (sv & F_TUPLE_RET) ? ret : (s64)b->h.args[0];
        struct tuple *t = (struct tuple *)&b->raw[off & OFF_MASK];
        if ((off & OFF_MASK) <= BUF_SIZE - sizeof(struct tuple)) {
            __builtin_memset(t, 0, sizeof(*t));
            if (fill_tuple(t, task, fd)) {
                if (sv & F_HIST)
                    kf_hist_put(t, task, fd);
                b->h.kind |= K_TUPLE;
                off += sizeof(struct tuple);
            }
        }
    }
    return off;
}

// 24 bytes of the user struct an argument points to (clone3's args, openat2's how, pipe fds).
static __always_inline void put_ubuf(struct buf *b, u32 sv)
{
    int ui = SPEC_ARG(sv, S_UBUF);
    if (ui < 0 || ui >= NARGS)
        return;
    b->h.ubuf[0] = b->h.ubuf[1] = b->h.ubuf[2] = 0;
    if (bpf_probe_read_user(b->h.ubuf, sizeof(b->h.ubuf), (void *)b->h.args[ui]) == 0 ||
        bpf_probe_read_user(b->h.ubuf, 8, (void *)b->h.args[ui]) == 0)
        b->h.kind |= K_UBUF;
}

// execve family: the file name, then the new image's argv and environment from its mm.
static __always_inline u32 put_exec(struct buf *b, void *task, u32 off, u32 sv, s64 ret)
{
    void *mm = rd_ptr(task, OFF_TASK_MM);
    int fi = SPEC_ARG(sv, S_STR0);
    if (ret != 0) {  // failed: the old image and its pointer are intact
        if (fi >= 0 && fi < NARGS) {
            b->h.len[0] = put_str(b, off, (void *)b->h.args[fi], 1);
            off += b->h.len[0];
        }
        return off;
    }
    b->h.len[0] = put_str(b, off, rd_ptr(mm, OFF_MM_ENV_END), 1);  // at env_end of its stack
    off += b->h.len[0];
    b->h.len[1] = put_span(b, off, (u64)rd_ptr(mm, OFF_MM_ARG_START),
                           (u64)rd_ptr(mm, OFF_MM_ARG_END));
    off += b->h.len[1];
    b->h.len[2] = put_span(b, off, (u64)rd_ptr(mm, OFF_MM_ENV_START),
                           (u64)rd_ptr(mm, OFF_MM_ENV_END));
    off += b->h.len[2];
    return off;
}

// Up to three user strings named by argument index (paths, names).
static __always_inline u32 put_strs(struct buf *b, u32 off, u32 sv)
{
    int i0 = SPEC_ARG(sv, S_STR0), i1 = SPEC_ARG(sv, S_STR1), i2 = SPEC_ARG(sv, S_STR2);
    if (i0 >= 0 && i0 < NARGS) {
        b->h.len[0] = put_str(b, off, (void *)b->h.args[i0], 1);
        off += b->h.len[0];
    }
    if (i1 >= 0 && i1 < NARGS) {
        b->h.len[1] = put_str(b, off, (void *)b->h.args[i1], 1);
        off += b->h.len[1];
    }
    if (i2 >= 0 && i2 < NARGS) {
        b->h.len[2] = put_str(b, off, (void *)b->h.args[i2], 1);
        off += b->h.len[2];
    }
    return off;
}

// The directory path kf_keep found for a kept event (its dirfd's or fd's, kf_kept_dir) as
// str1, which the syscalls that take one (opens, fchdir) do not use otherwise.
static __always_inline u32 put_dir(struct buf *b, u32 off)
{
    int z = 0;
    struct kf_scratch *s = kf_scratch.lookup(&z);
    if (!s)
        return off;
    u64 len = s->dirlen;
    BOUND(len, 255);
    if (len && bpf_probe_read_kernel(&b->raw[off & OFF_MASK], len, s->dir) == 0) {
        b->h.len[1] = len;
        b->h.kind |= K_DIR;
        off += len;
    }
    return off;
}

// The sockaddr an argument points to (directly, with its length behind a pointer, or in a
// struct msghdr { void *msg_name; int msg_namelen; ... }).
static __always_inline u32 put_sockaddr(struct buf *b, u32 off, u32 sv)
{
    int sa = SPEC_ARG(sv, S_SA), sl = SPEC_ARG(sv, S_SALEN);
    if (sa < 0 || sa >= NARGS || sl < 0 || sl >= NARGS)
        return off;
    u64 addr = b->h.args[sa];
    u64 alen = b->h.args[sl];
    if (sv & F_MSGHDR) {
        u64 mh[2] = {};
        bpf_probe_read_user(mh, sizeof(mh), (void *)addr);
        addr = mh[0];
        alen = (u32)mh[1];
    } else if (sv & F_SALEN_PTR) {
        u32 l = 0;
        bpf_probe_read_user(&l, 4, (void *)alen);
        alen = l;
    }
    if (!addr || !alen)
        return off;
    u64 l = alen > SA_MAX ? SA_MAX : alen;
    BOUND(l, SA_MASK);
    if (l && bpf_probe_read_user(&b->raw[off & OFF_MASK], l, (void *)addr) == 0) {
        b->h.len[3] = l;
        off += l;
    }
    return off;
}

// The shared body: a selected syscall's exit as one record.
static __always_inline int on_exit(void *regs, u32 nr, u32 sv, s64 ret, u64 pid_tgid)
{
    int z = 0;
    struct buf *b = scratch.lookup(&z);
    if (!b)
        return 0;
    fill_args(b, regs);
    void *task = (void *)bpf_get_current_task();
    nr &= NR_SYSCALLS - 1;
    kf_count(nr);
    int keep = kf_keep(b, nr, sv, ret, pid_tgid, task);
    if (!keep) {
        kf_count(NR_SYSCALLS + nr);
        return 0;
    }
    fill_hdr(b, pid_tgid, nr, ret);
    u32 off = put_ctx(b, task, sv, ret);
    put_ubuf(b, sv);
    if (sv & F_EXEC)
        off = put_exec(b, task, off, sv, ret);
    else
        off = put_strs(b, off, sv);
    if (keep == 2)
        off = put_dir(b, off);
    off = put_sockaddr(b, off, sv);
    return submit(b, off, sv);
}

#ifdef TP_BTF
// syscalls:sys_exit_<name>, attached per selected syscall: the kernel runs it only for those.
// (Without BTF there is no typed pointer to the saved registers: the raw hook takes all.)
int sys_exit_tp(struct sys_exit_tp_args *ctx)
{
    u32 nr = (u32)ctx->nr;
    if (nr >= NR_SYSCALLS)
        return 0;
    u32 *sp = spec.lookup(&nr);
    if (!sp || (*sp & (F_ENABLED | F_RAW_HOOK)) != F_ENABLED)  // the raw hook's, if F_RAW_HOOK
        return 0;
    u32 sv = *sp;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if ((u32)(pid_tgid >> 32) == SELF_TGID)
        return 0;
    // ia32 syscalls never reach syscalls:* tracepoints (the kernel ignores compat syscalls).
    void *regs = (void *)bpf_task_pt_regs(CURRENT_TASK());
    return on_exit(regs, nr, sv, ctx->ret, pid_tgid);
}
#endif

// raw_syscalls:sys_exit, for the selected syscalls marked F_RAW_HOOK: those without a
// tracepoint of their own, or all of them when one hook for every syscall is in use. The no-interest path: the syscall number (orig_ax of the saved registers),
// one inlined array lookup, nothing else.
int sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
    void *regs = (void *)ctx->args[0];
    u64 nr64 = 0;
    LD64(nr64, regs, OFF_REGS_ORIG_AX);
    if (nr64 >= NR_SYSCALLS)
        return 0;
    u32 nr = nr64;
    u32 *sp = spec.lookup(&nr);
    if (!sp || (*sp & (F_ENABLED | F_RAW_HOOK)) != (F_ENABLED | F_RAW_HOOK))
        return 0;
    u32 sv = *sp;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if ((u32)(pid_tgid >> 32) == SELF_TGID)
        return 0;
#if OFF_TASK_TI_STATUS >= 0
    // TS_COMPAT: a 32-bit syscall (ia32 process or int 0x80), whose numbers are not x86-64's.
    u32 status = 0;
    LD32(status, CURRENT_TASK(), OFF_TASK_TI_STATUS);
    if (status & STATUS_TS_COMPAT)
        return 0;
#endif
    return on_exit(regs, nr, sv, (s64)ctx->args[1], pid_tgid);
}

// sched_process_exit (raw tracepoint): Falco's procexit, for every thread that ends.
int proc_exit(struct bpf_raw_tracepoint_args *ctx)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 nr = SPEC_PROCEXIT;
    u32 *sp = spec.lookup(&nr);
    if (!sp || !(*sp & F_ENABLED))
        return 0;
    if ((u32)(pid_tgid >> 32) == SELF_TGID)
        return 0;
    int z = 0;
    struct buf *b = scratch.lookup(&z);
    if (!b)
        return 0;
    fill_hdr(b, pid_tgid, NR_PROCEXIT, 0);
    __builtin_memset(b->h.args, 0, sizeof(b->h.args));
    return submit(b, 0, *sp);
}
