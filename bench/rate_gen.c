/* bench_rate's generator: a paced, realistic mix of selected syscalls (see bench_rate.py).
 *
 * usage: rate_gen RATE SECONDS WORKERS EXECS_PER_S PATHS_FILE
 * RATE is the target of selected syscall events per second, shared by WORKERS threads (each
 * pinned to CPU i % ncpu). Each worker repeats a round of ROUND events (the mix below),
 * paced by an absolute clock so that rounds start at RATE / WORKERS / ROUND per second; a
 * worker more than 50 ms behind drops the backlog (so the offered rate is never above the
 * target in a burst). PATHS_FILE has one "<category> <path>" per line, categories
 * l (/usr/lib), i (/usr/include), t (/tmp), e (/etc), d (a directory), n (a missing file).
 * One more thread fork+execs /bin/true EXECS_PER_S times a second.
 * Prints: rounds=N events=N connect_errors=N execs=N seconds=F
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUND 100
#define MAXP 256
static char *paths[6][MAXP];
static int npaths[6];
static const char CATS[] = "litedn";
static double rate_per_worker, seconds;
static struct sockaddr_in srv_addr;
static atomic_long rounds, conn_errors, execs;
static atomic_int done;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void open_close(int cat, unsigned *k, int flags) {
    if (!npaths[cat]) return;
    int fd = openat(AT_FDCWD, paths[cat][(*k)++ % npaths[cat]], flags);
    if (fd >= 0) close(fd);
}

/* One round: 100 selected syscall events, in the proportions bench_rate.py explains. */
static void round_once(unsigned *k, int devnull) {
    for (int j = 0; j < 17; j++) open_close(0, k, O_RDONLY);              /* 34 */
    for (int j = 0; j < 2; j++) open_close(5, k, O_RDONLY);               /* 2 (ENOENT) */
    for (int j = 0; j < 14; j++) open_close(1, k, O_RDONLY);              /* 28 */
    for (int j = 0; j < 6; j++) open_close(2, k, j & 1 ? O_RDONLY : O_WRONLY); /* 12 */
    for (int j = 0; j < 2; j++) open_close(3, k, O_RDONLY);               /* 4 */
    for (int j = 0; j < 2; j++) {                                         /* 6: dir + fcntl */
        int fd = openat(AT_FDCWD, paths[4][(*k)++ % npaths[4]], O_RDONLY | O_DIRECTORY);
        fcntl(fd, F_GETFL);
        close(fd);
    }
    for (int j = 0; j < 2; j++) {                                         /* 4: dup2 */
        dup2(devnull, 200);
        close(200);
    }
    for (int j = 0; j < 2; j++) {         /* 10: socket, connect, close + accept, close */
        int c = socket(AF_INET, SOCK_STREAM, 0);
        struct linger lg = {1, 0};        /* a reset at close: no TIME_WAIT left behind */
        setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        if (connect(c, (void *)&srv_addr, sizeof srv_addr)) atomic_fetch_add(&conn_errors, 1);
        close(c);
    }
}

static void *worker(void *arg) {
    long id = (long)arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(id % sysconf(_SC_NPROCESSORS_ONLN), &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    int devnull = open("/dev/null", O_RDONLY);
    unsigned k = (unsigned)id * 7;
    double period = ROUND / rate_per_worker, start = now(), next = start;
    long n = 0;
    while (next - start < seconds) {
        round_once(&k, devnull);
        n++;
        next += period;
        double t = now();
        if (t < next) {
            struct timespec ts = {(time_t)(next - t), (long)((next - t - (time_t)(next - t)) * 1e9)};
            nanosleep(&ts, 0);
        } else if (t - next > 0.05) {
            next = t;  /* too far behind: no burst to catch up */
        }
    }
    atomic_fetch_add(&rounds, n);
    close(devnull);
    return 0;
}

static void *acceptor(void *arg) {
    int srv = (int)(long)arg;
    while (!atomic_load(&done)) {
        int c = accept(srv, 0, 0);
        if (c >= 0) close(c);
    }
    return 0;
}

static void *execer(void *arg) {
    double per_s = *(double *)arg, start = now(), next = start;
    if (per_s <= 0) return 0;
    while (next - start < seconds) {
        pid_t p = fork();
        if (p == 0) {
            execl("/bin/true", "true", (char *)0);
            _exit(127);
        }
        if (p > 0) waitpid(p, 0, 0), atomic_fetch_add(&execs, 1);
        next += 1.0 / per_s;
        double t = now();
        if (t < next) usleep((useconds_t)((next - t) * 1e6));
    }
    return 0;
}

static int load_paths(const char *file) {
    FILE *f = fopen(file, "r");
    char line[4096];
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(CATS, line[0]);
        line[strcspn(line, "\n")] = 0;
        if (!c || line[0] == 0 || line[1] != ' ') continue;
        int cat = (int)(c - CATS);
        if (npaths[cat] < MAXP) paths[cat][npaths[cat]++] = strdup(line + 2);
    }
    fclose(f);
    return npaths[4] ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s RATE SECONDS WORKERS EXECS_PER_S PATHS_FILE\n", argv[0]);
        return 2;
    }
    double rate = atof(argv[1]), execs_per_s = atof(argv[4]);
    int workers = atoi(argv[3]);
    seconds = atof(argv[2]);
    rate_per_worker = rate / workers;
    if (load_paths(argv[5])) {
        fprintf(stderr, "rate_gen: cannot read %s (or it names no directory)\n", argv[5]);
        return 2;
    }
    int srv = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    srv_addr.sin_family = AF_INET;
    srv_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof srv_addr;
    if (bind(srv, (void *)&srv_addr, sizeof srv_addr) || listen(srv, 4096) ||
        getsockname(srv, (void *)&srv_addr, &al)) {
        perror("rate_gen: listener");
        return 1;
    }
    pthread_t acc, ex, th[64];
    if (workers < 1 || workers > 64) return 2;
    pthread_create(&acc, 0, acceptor, (void *)(long)srv);
    pthread_create(&ex, 0, execer, &execs_per_s);
    double t0 = now();
    for (long i = 0; i < workers; i++) pthread_create(&th[i], 0, worker, (void *)i);
    for (int i = 0; i < workers; i++) pthread_join(th[i], 0);
    double took = now() - t0;
    pthread_join(ex, 0);
    atomic_store(&done, 1);
    shutdown(srv, SHUT_RDWR);
    pthread_join(acc, 0);
    printf("rounds=%ld events=%ld connect_errors=%ld execs=%ld seconds=%.3f\n",
           (long)rounds, (long)rounds * ROUND, (long)conn_errors, (long)execs, took);
    return 0;
}
