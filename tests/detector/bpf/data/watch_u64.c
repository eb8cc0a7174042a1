/* A thread that reads a u64 as the kernel reads a ring buffer's consumer position (one 8-byte
 * load, while userspace writes it) and counts the values it sees that were never written. */
#include <pthread.h>
#include <stdint.h>

static const volatile uint64_t *where;
static uint64_t allowed_a, allowed_b;
static volatile int stopping;
static uint64_t torn, seen;
static pthread_t thread;

static void *watch(void *arg)
{
    while (!stopping) {
        uint64_t v = __atomic_load_n(where, __ATOMIC_ACQUIRE);
        seen++;
        if (v != allowed_a && v != allowed_b)
            torn++;
    }
    return 0;
}

int watch_start(const volatile uint64_t *p, uint64_t a, uint64_t b)
{
    where = p;
    allowed_a = a;
    allowed_b = b;
    stopping = 0;
    torn = seen = 0;
    return pthread_create(&thread, 0, watch, 0);
}

uint64_t watch_stop(uint64_t *loads)
{
    stopping = 1;
    pthread_join(thread, 0);
    *loads = seen;
    return torn;
}
