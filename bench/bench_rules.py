"""Rules engine benchmark: load + compile the upstream rules, then events/s compiled vs reference.

Loads falco_rules.yaml, falco-incubating_rules.yaml and falco-sandbox_rules.yaml from
../shared/falco-rules (skipped with a message when absent), prints the load time, then runs one
generated stream of realistic syscall events (execve, open/openat, connect, accept, dup,
symlink, ptrace... from host and container process trees) against the stable ruleset on this
core: through the compiled per-event-type matchers, and through the reference evaluator over the
same candidate rules. Prints events/s for both and their ratio (targets: >= 300k events/s,
compiled >= 10x reference). Then the cost of the load-time bounds: the ``regex`` operator on
RE2 against Python's ``re`` on the same patterns (a ratio, and the backtracking case), and the
macro expansion checks' share of the load time, with the time and peak memory of refusing a
1 KB macro bomb.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

from detector.events import ContainerInfo, Event, FdInfo, ThreadInfo, UserInfo
from detector.rules.eval.codegen import CompiledCondition, evttypes
from detector.rules.eval.dispatch import RuleIndex
from detector.rules.eval.reference import ReferenceEvaluator

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "falco-rules"
FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")


def _load(paths: list[Path]) -> list[tuple[str, Any]]:
    """(rule name, expanded condition tree) for every enabled syscall rule, in load order.

    A small stand-in for the loader (lists substituted as text, macros expanded on the tree);
    exceptions and overrides are not needed by the upstream files.
    """
    import yaml

    from detector.rules.lang import ast
    from detector.rules.lang.parser import parse

    lists: dict[str, list[str]] = {}
    macros: dict[str, str] = {}
    rules: dict[str, tuple[str, bool]] = {}
    for path in paths:
        for item in yaml.load(path.read_text(), Loader=yaml.BaseLoader) or []:
            if "list" in item:
                items = [lists.get(i, [i]) for i in item.get("items", [])]
                flat = [x for sub in items for x in sub]
                lists[item["list"]] = lists.get(item["list"], []) + flat \
                    if item.get("append") == "true" else flat
            elif "macro" in item:
                macros[item["macro"]] = item["condition"]
            elif "rule" in item and "condition" in item:
                rules[item["rule"]] = (item["condition"],
                                       item.get("enabled", "true") != "false")

    def subst(cond: str) -> str:
        for name, items in lists.items():
            quoted = ", ".join(f'"{i}"' if " " in i and not i.startswith(('"', "'")) else i
                               for i in items)
            cond = re.sub(r"(?<![^\s(),=])" + re.escape(name) + r"(?![^\s(),=])", quoted, cond)
        cond = re.sub(r",(\s*,)+", ",", cond)
        return re.sub(r",\s*\)", ")", re.sub(r"\(\s*,", "(", cond))

    trees: dict[str, ast.Expr] = {}

    def expand(node: ast.Expr) -> ast.Expr:
        if isinstance(node, ast.Identifier):
            if node.name not in trees:
                trees[node.name] = expand(parse(subst(macros[node.name])))
            return trees[node.name]
        if isinstance(node, (ast.And, ast.Or)):
            return type(node)(tuple(expand(c) for c in node.children), node.pos)
        if isinstance(node, ast.Not):
            return ast.Not(expand(node.child), node.pos)
        return node

    return [(name, expand(parse(subst(cond)))) for name, (cond, on) in rules.items() if on]


def _proc(tid: int, comm: str, exe: str, args: list[str], parent: ThreadInfo | None,
          container: ContainerInfo, uid: int = 0, exepath: str | None = None) -> ThreadInfo:
    th = ThreadInfo(tid=tid, pid=tid, ppid=parent.pid if parent else 0, comm=comm, exe=exe,
                    exepath=exepath or "/usr/bin/" + comm, args=args, cwd="/root",
                    uid=uid, euid=uid, user=UserInfo(uid, "root" if uid == 0 else "app"),
                    loginuid=-1 if container.id != "host" else 1000, start_ts=1_700_000_000 * 10**9,
                    container=container, parent=parent, sid=parent.sid if parent else tid,
                    vpgid=tid, cap_effective=0x1FF if uid == 0 else 0)
    th.fds = {0: FdInfo(0, "file", "/dev/pts/0"), 1: FdInfo(1, "file", "/dev/pts/0"),
              2: FdInfo(2, "file", "/dev/pts/0")}
    return th


PATHS = ["/etc/ld.so.cache", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/proc/self/status",
         "/etc/passwd", "/tmp/build/obj.o", "/var/log/nginx/access.log",
         "/etc/nginx/nginx.conf", "/usr/share/zoneinfo/UTC", "/home/dev/src/main.py",
         "/root/.bashrc", "/usr/bin/ls", "/dev/null", "/var/lib/dpkg/status", "/etc/hosts",
         "/usr/lib/python3.11/os.py", "/proc/meminfo", "/sys/fs/cgroup/cpu.max",
         "/usr/share/locale/locale.alias", "/etc/nsswitch.conf", "/tmp/pip-build/setup.py"]
RARE = ["/etc/shadow", "/etc/sudoers", "/root/.ssh/authorized_keys"]  # alert-worthy
IPS = [("10.0.0.5", 443), ("142.250.72.14", 443), ("127.0.0.1", 6379),
       ("169.254.169.254", 80), ("192.168.1.20", 22)]
KINDS = (["openat"] * 45 + ["open"] * 4 + ["execve"] * 8 + ["connect"] * 12
         + ["accept"] * 5 + ["dup2"] * 5 + ["close"] * 10 + ["symlinkat"] * 2
         + ["ptrace"] * 1 + ["socket"] * 3 + ["sendto"] * 3 + ["setuid"] * 1 + ["link"] * 1)


class _World:
    """The process trees the stream's events come from: a shell, a container, cron, sshd."""

    def __init__(self) -> None:
        host = ContainerInfo()
        ctr = ContainerInfo(id="3ad7b26ded6d", full_id="3ad7b26ded6d" + "0" * 52, type="podman",
                            name="web", image="docker.io/library/nginx:1.25",
                            image_repository="docker.io/library/nginx", image_tag="1.25",
                            privileged=False, start_ts=1_700_000_000 * 10**9,
                            labels={"io.kubernetes.pod.namespace": "shop"})
        systemd = _proc(1, "systemd", "/sbin/init", [], None, host)
        sshd = _proc(800, "sshd", "/usr/sbin/sshd", ["-D"], systemd, host)
        self.bash = _proc(1200, "bash", "-bash", [], sshd, host, uid=1000,
                          exepath="/usr/bin/bash")
        conmon = _proc(2000, "conmon", "/usr/bin/conmon", ["-c", "3ad7b26ded6d"], systemd, host)
        nginx = _proc(2001, "nginx", "nginx", ["-g", "daemon off;"], conmon, ctr,
                      exepath="/usr/sbin/nginx")
        self.worker = _proc(2002, "nginx", "nginx", [], nginx, ctr, uid=101,
                            exepath="/usr/sbin/nginx")
        cron = _proc(900, "cron", "/usr/sbin/cron", ["-f"], systemd, host)
        # (parent, what it runs): weighted 60/5/25/10 when choosing who execs
        self.procs = [
            (self.bash, ["ls", "cat", "grep", "git", "python3", "vim", "curl", "ps", "sh"]),
            (nginx, ["nginx"] * 9 + ["sh"]),
            (cron, ["sh", "run-parts", "logrotate"]),
            (sshd, ["sshd", "bash"]),
        ]
        self.live: list[ThreadInfo] = [self.bash, nginx, self.worker, cron, sshd]
        self.next_tid = 5000


def make_stream(n: int, seed: int = 7) -> list[Event]:
    """A reproducible stream of syscall exit events from realistic process trees."""
    rnd = random.Random(seed)
    world = _World()
    out: list[Event] = []
    for num in range(1, n + 1):
        ts = 1_700_000_100 * 10**9 + num * 1000
        kind = rnd.choice(KINDS)
        th = rnd.choice(world.live)
        ev = Event(num=num, ts=ts, type=kind, tid=th.tid, thread=th)
        if kind in ("openat", "open"):
            _open(ev, rnd)
        elif kind == "setuid" and rnd.random() < 0.9:
            ev.type, ev.res, ev.args = "getuid", 1000, {"res": 1000}
        elif kind == "execve":
            _execve(ev, rnd, world)
        elif kind in ("connect", "sendto", "accept"):
            _connect(ev, rnd, world)
        else:
            _other(ev, rnd)
        out.append(ev)
    return out


def _open(ev: Event, rnd: random.Random) -> None:
    path = rnd.choice(RARE) if rnd.random() < 0.004 else rnd.choice(PATHS)
    writable = path.startswith(("/tmp/", "/var/log/", "/home/"))
    flags = rnd.choice([0o1, 0o101, 0o1101, 0o2, 0o2000000]) if writable \
        or rnd.random() < 0.002 else rnd.choice([0, 0o2000000, 0o4000])
    fdn = rnd.choice([3, 4, 5, -2])
    ev.res = fdn
    ev.args = {"fd": fdn, "dirfd": -100, "name": path, "flags": flags, "mode": 0o644}
    if fdn >= 0:
        ev.fd = FdInfo(fdn, "file", path, path, open_flags=flags)


def _execve(ev: Event, rnd: random.Random, world: _World) -> None:
    parent, comms = rnd.choices(world.procs, weights=(60, 5, 25, 10))[0]
    comm = rnd.choice(comms)
    world.next_tid += 1
    child = _proc(world.next_tid, comm, comm, ["-c", "true"] if comm == "sh" else ["x"],
                  parent, parent.container, uid=parent.uid)
    child.tty = 34816 if parent is world.bash else 0
    ev.thread, ev.tid, ev.res = child, child.tid, 0
    ev.args = {"res": 0, "exe": comm, "args": b"x", "cwd": "/root"}
    world.live.append(child)
    if len(world.live) > 40:
        world.live.pop(5)


def _connect(ev: Event, rnd: random.Random, world: _World) -> None:
    th = ev.thread
    if th is None or th.comm not in ("nginx", "curl", "python3", "git"):
        ev.thread, ev.tid = world.worker, world.worker.tid
    ip, port = IPS[3] if rnd.random() < 0.005 else rnd.choice(IPS[:3] + IPS[4:])
    ev.res = rnd.choice([0, 0, -115])
    ev.args = {"res": ev.res, "fd": 6, "tuple": f"10.0.0.2:40000->{ip}:{port}"}
    ev.fd = FdInfo(6, "ipv4", f"10.0.0.2:40000->{ip}:{port}", l4proto="tcp",
                   cip="10.0.0.2", cport=40000, sip=ip, sport=port, lip="10.0.0.2",
                   lport=40000, rip=ip, rport=port, connected=True, sockfamily="ip")


def _other(ev: Event, rnd: random.Random) -> None:
    kind = ev.type
    if kind == "dup2":
        ev.res = rnd.choice([0, 1, 2, 7])
        ev.args = {"res": ev.res, "oldfd": 6, "newfd": ev.res}
        kind_ = "ipv4" if rnd.random() < 0.03 else rnd.choice(["file", "pipe"])
        ev.fd = FdInfo(ev.res, kind_, "10.0.0.2:1->1.2.3.4:4444")
    elif kind == "symlinkat":
        ev.res = 0
        target = "/etc/shadow" if rnd.random() < 0.02 else "/tmp/build/out.so"
        ev.args = {"res": 0, "target": target, "linkdirfd": -100, "linkpath": "/tmp/link"}
    elif kind == "ptrace":
        ev.res = 0
        request = rnd.choice([16, 0x4206]) if rnd.random() < 0.05 else rnd.choice([2, 3, 24])
        ev.args = {"res": 0, "request": request, "pid": 1200}
    elif kind == "socket":
        ev.res = 5
        domain = 17 if rnd.random() < 0.02 else rnd.choice([1, 2, 10])
        ev.args = {"fd": 5, "domain": domain, "type": 1, "proto": 0}
    else:
        ev.res = 0
        ev.args = {"res": 0}


def _engine_or_index(paths: list[Path]) -> tuple[Any, list[tuple[str, Any]], str]:
    """The project's RulesEngine over the loaded files, or a RuleIndex of the stand-in loader.

    Returns (matcher with ``process(event)`` or ``match(event)``, [(rule, condition tree)],
    description).
    """
    try:
        from detector.rules.engine import RulesEngine
        from detector.rules.load.loader import load_rules_files
    except ImportError:
        loaded = _load(paths)
        index: RuleIndex[str] = RuleIndex([(n, CompiledCondition(t)) for n, t in loaded],
                                          first=True)
        return index, loaded, "RuleIndex (stand-in loader)"
    ruleset = load_rules_files([str(p) for p in paths])
    engine = RulesEngine(ruleset, rule_matching="first")
    return engine, [(r.name, r.tree) for r in engine.rules], "RulesEngine (alerts formatted)"


def main() -> None:
    """Print load time, compiled and reference events/s, and their ratio."""
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} not found (the upstream rules files live beside the project)")
        return
    t0 = time.perf_counter()
    engine, stable, how = _engine_or_index([SHARED / FILES[0]])
    t1 = time.perf_counter()
    engine_all, everything, _ = _engine_or_index([SHARED / f for f in FILES])
    t2 = time.perf_counter()
    print(f"load+compile stable: {len(stable)} rules in {t1 - t0:.2f}s; "
          f"all three files: {len(everything)} rules in {t2 - t1:.2f}s ({how})")

    events = make_stream(30000)
    run = engine.process if hasattr(engine, "process") else engine.match
    for ev in events[:3000]:  # warm up: builds every event type's matcher
        run(ev)
    # The reference evaluator over the same candidates (Falco's index), first match wins.
    refs = [(name, evttypes(tree), ReferenceEvaluator(tree)) for name, tree in stable]
    by_type: dict[str, list[ReferenceEvaluator]] = {}
    sample = events[:5000]

    def reference() -> int:
        n = 0
        for ev in sample:
            cands = by_type.get(ev.type)
            if cands is None:
                cands = by_type[ev.type] = [r for _, ts, r in refs if ts is None or ev.type in ts]
            if any(r(ev) for r in cands):
                n += 1
        return n

    # CPU time of this process (the machine is shared), rounds interleaved, best of each.
    best = ref_rate = 0.0
    hits = ref_hits = 0
    for _ in range(3):
        start = time.process_time()
        hits = sum(1 for ev in events if run(ev))
        best = max(best, len(events) / (time.process_time() - start))
        start = time.process_time()
        ref_hits = reference()
        ref_rate = max(ref_rate, len(sample) / (time.process_time() - start))
    check = sum(1 for ev in sample if run(ev))
    print(f"stream: {len(events)} events, {hits} raise an alert "
          f"(first {len(sample)}: compiled {check}, reference {ref_hits})")
    print(f"compiled engine: {best:,.0f} events/s on one core (target >= 300,000)")
    print(f"reference evaluator: {ref_rate:,.0f} events/s")
    print(f"ratio compiled/reference: {best / ref_rate:.1f}x (target >= 10x)")
    run_all = engine_all.process if hasattr(engine_all, "process") else engine_all.match
    for ev in events[:3000]:
        run_all(ev)
    start = time.process_time()
    all_hits = sum(1 for ev in events if run_all(ev))
    rate = len(events) / (time.process_time() - start)
    print(f"all three files ({len(everything)} rules): {rate:,.0f} events/s, "
          f"{all_hits} alerts")
    regex_costs()
    macro_bound_costs([SHARED / f for f in FILES])


_REGEXES = (("/home/.*/dev", "/home/someone/projects/dev"), (".*[.](sh|py)", "/tmp/x/run.py"),
            ("[a-z0-9]+-[0-9]+", "nginx-12345"), ("(curl|wget|nc)", "python3"),
            ("/usr/(s?bin|lib)/.*", "/usr/lib/x86_64-linux-gnu/libc.so.6"))


def _best_ns(fn: Any, value: str, n: int = 50_000) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(n):
            fn(value)
        best = min(best, (time.process_time() - start) / n * 1e9)
    return best


def regex_costs() -> None:
    """RE2 (as the ``regex`` operator runs) against Python ``re`` on the same patterns."""
    from detector.rules.eval.regex import Regex

    re2_ns = py_ns = 0.0
    for pattern, value in _REGEXES:
        compiled, python = Regex(pattern), re.compile(pattern)
        assert compiled.fullmatch(value) == (python.fullmatch(value) is not None)
        re2_ns += _best_ns(compiled.fullmatch, value)
        py_ns += _best_ns(python.fullmatch, value)
    n = len(_REGEXES)
    print(f"regex: RE2 {re2_ns / n:,.0f} ns/match, Python re {py_ns / n:,.0f} ns/match on the "
          f"same {n} patterns: RE2 costs {re2_ns / py_ns:.1f}x (linear time; the stable rules "
          "use no regex)")
    value = "a" * 22
    start = time.process_time()
    re.compile("(a+)+b").fullmatch(value)
    slow = time.process_time() - start
    start = time.process_time()
    Regex("(a+)+b").fullmatch("a" * 100_000)
    fast = time.process_time() - start
    print(f"regex (a+)+b: Python re {slow * 1e3:,.0f} ms on 22 characters (doubling per "
          f"character); RE2 {fast * 1e3:,.2f} ms on 100,000")


def macro_bound_costs(paths: list[Path]) -> None:
    """The macro expansion checks' share of a load, and the cost of refusing a macro bomb."""
    import tracemalloc

    from detector.rules.load import macros
    from detector.rules.load.loader import RulesLoader

    spent = [0.0]
    measure = macros.MacroResolver.measure

    def timed(self: Any, tree: Any) -> tuple[int, int]:
        start = time.process_time()
        try:
            return measure(self, tree)
        finally:
            spent[0] += time.process_time() - start

    texts = [(p.read_text(), str(p)) for p in paths]
    macros.MacroResolver.measure = timed  # type: ignore[method-assign]
    try:
        start = time.process_time()
        loader = RulesLoader()
        for text, name in texts:
            loader.load(text, name)
        total = time.process_time() - start
    finally:
        macros.MacroResolver.measure = measure  # type: ignore[method-assign]
    print(f"macro bounds at load: {spent[0] * 1e3:.1f} ms of {total * 1e3:.0f} ms loading the "
          f"three files ({spent[0] / total:.1%})")
    bomb = "- macro: m0\n  condition: proc.name = a\n" + "".join(
        f"- macro: m{i}\n  condition: (m{i - 1} or m{i - 1})\n" for i in range(1, 41))
    bomb += "- rule: r\n  desc: d\n  condition: evt.type = open and m40\n  output: o\n" \
            "  priority: INFO\n"
    tracemalloc.start()
    start = time.process_time()
    result = RulesLoader().load(bomb, "bomb.yaml")
    took = time.process_time() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"macro bomb ({len(bomb)} bytes, 40 levels = 2^40 checks expanded): refused in "
          f"{took * 1e3:.0f} ms, peak {peak / 2**20:.1f} MiB traced: {result.errors[0].message}")


if __name__ == "__main__":
    main()
