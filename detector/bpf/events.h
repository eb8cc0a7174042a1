// Records the BPF programs of events.c send to userspace, and the bits of the `spec` map.
// Kept apart so that a plain C compiler can check them against detector/sources/decode.py.
#ifndef FALCOCTL_PY_EVENTS_H
#define FALCOCTL_PY_EVENTS_H

#define SPEC_ARG(spec, shift) ((((spec) >> (shift)) & 7) - 1)
#define S_STR0 0
#define S_STR1 3
#define S_STR2 6
#define S_SA 9
#define S_SALEN 12
#define F_SALEN_PTR (1u << 15)
#define F_MSGHDR (1u << 16)
#define S_UBUF 17
#define F_TUPLE_ARG0 (1u << 20)
#define F_TUPLE_RET (1u << 21)
#define F_PROC (1u << 22)
#define F_EXEC (1u << 23)
#define F_ENABLED (1u << 25)
#define S_DROPCAT 26  // 3 bits: Falco's n_drops_buffer_* category of the syscall

#define NR_PROCEXIT 1001
#define SPEC_PROCEXIT 489  // spec slot of procexit (no syscall has this number)
#define STR_MAX 256
#define ARGS_MAX 1024
#define SA_MAX 112
#define OFF_MASK 4095
#define BUF_SIZE 8192

// kind bits of a record
#define K_PROC 1
#define K_TUPLE 2
#define K_UBUF 4

struct hdr {
    u64 ts;          // bpf_ktime_get_boot_ns
    u64 pid_tgid;
    s64 ret;
    u64 args[6];
    u64 uid_gid;
    u32 nr;
    u32 ppid;        // task->real_parent->tgid
    u16 len[4];      // str0, str1, str2, sockaddr
    u16 kind;
    u16 size;
    u32 cpu;
    char comm[16];
    u64 ubuf[3];
};

struct proc_ctx {
    u32 loginuid;
    u32 sessionid;
    u32 tty_major;
    u32 tty_minor;   // minor_start + index; tty_major 0 = no controlling terminal
    u32 vpid;
    u32 vtid_level;
    u32 euid;
    u32 egid;
    u64 cap_inh;
    u64 cap_prm;
    u64 cap_eff;
    u64 exe_ino;
    s64 exe_ctime;   // seconds
    s64 exe_mtime;
    u32 exe_dev;
    u32 exe_flags;   // 1: overlayfs upper layer, 2: overlayfs
    u64 cgroup_id;
    char exe_dname[32];
    char cgroup[4][96];  // the cgroup v2 path's last components, innermost first
};

struct tuple {
    u16 family;
    u16 type;
    u16 proto;
    u16 lport;       // host order
    u16 rport;       // host order
    u16 pad[3];
    u8 laddr[16];
    u8 raddr[16];
};

#endif
