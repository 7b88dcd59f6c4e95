/* The OpenMP team a handler call runs with, chosen at call time with no Python: the rule
 * of fastnn/_threads.py's team_size() (adaptive teams), in C.
 *
 * A team larger than the CPUs other processes leave free waits at every barrier for a
 * member the scheduler parked (15-50x slowdowns beside another busy process), so the
 * thread count fastnn.jax settles at trace time is a cap: each call runs with the cap,
 * lowered to the free CPUs -- the CPUs this process may use minus the runnable threads of
 * other processes (/proc/loadavg's 4th field less this process's runnable threads).  The
 * load is sampled at most every TEAM_SAMPLE_NS (fastnn._threads.TEAM_SAMPLE_SECONDS) by
 * whichever call finds the sample stale; a team shrinks on two busy samples in a row and
 * grows at once, as in Python.  Without /proc (not Linux) the cap is used.
 *
 *   fnn_jax_team(threads)  threads > 0: the adaptive team for cap `threads`;
 *                          threads < 0: exactly -threads (adaptive teams switched off).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define TEAM_SAMPLE_NS 20000000LL

static int team_free = -1;   /* the free CPUs last decided (-1: not sampled yet) */
static int team_last = -1;   /* the previous raw sample */
static long long team_at = 0; /* when it was taken (CLOCK_MONOTONIC, ns) */
static int team_busy = 0;    /* a call is sampling (the others keep the last value) */

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int machine_cpus(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        return n > 0 ? n : 1;
    }
#endif
    return 1;
}

/* Runnable threads of this process (state R in /proc/self/task/<tid>/stat), -1 if unknown. */
static int own_running(void) {
    DIR* dir = opendir("/proc/self/task");
    struct dirent* entry;
    char path[64], buf[512];
    int count = 0;
    if (dir == NULL) return -1;
    while ((entry = readdir(dir)) != NULL) {
        FILE* f;
        size_t got;
        char* close;
        if (entry->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%.32s/stat", entry->d_name);
        if ((f = fopen(path, "r")) == NULL) continue; /* the thread ended meanwhile */
        got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = 0;
        close = strrchr(buf, ')');
        if (close != NULL && close[1] == ' ' && close[2] == 'R') ++count;
    }
    closedir(dir);
    return count;
}

/* fastnn._threads._free_cpus for cap `cap`. */
static int free_cpus(int cap, int cpus) {
    FILE* f = fopen("/proc/loadavg", "r");
    double a, b, c;
    int running = 0, total = 0, ours;
    if (f == NULL) return cpus;
    if (fscanf(f, "%lf %lf %lf %d/%d", &a, &b, &c, &running, &total) != 5) running = 0;
    fclose(f);
    if (running <= cap) return cpus; /* the quiet case */
    ours = own_running();
    if (ours < cap) ours = cap;
    return cpus - (running - ours > 0 ? running - ours : 0);
}

int fnn_jax_team(int threads) {
    static int cpus = 0;
    long long now;
    int free;
    if (threads < 0) return -threads;
    if (threads <= 1) return 1;
    if (__atomic_load_n(&cpus, __ATOMIC_RELAXED) == 0)
        __atomic_store_n(&cpus, machine_cpus(), __ATOMIC_RELAXED);
    now = now_ns();
    if ((__atomic_load_n(&team_free, __ATOMIC_ACQUIRE) < 0 ||
         now - __atomic_load_n(&team_at, __ATOMIC_RELAXED) >= TEAM_SAMPLE_NS) &&
        !__atomic_exchange_n(&team_busy, 1, __ATOMIC_ACQUIRE)) {
        int sample = free_cpus(threads, cpus), last = team_last < 0 ? cpus : team_last;
        team_last = sample;
        __atomic_store_n(&team_at, now, __ATOMIC_RELAXED);
        __atomic_store_n(&team_free, sample > last ? sample : last, __ATOMIC_RELEASE);
        __atomic_store_n(&team_busy, 0, __ATOMIC_RELEASE);
    }
    free = __atomic_load_n(&team_free, __ATOMIC_ACQUIRE);
    if (free < 0 || free >= threads) return threads;
    return free > 1 ? free : 1;
}
