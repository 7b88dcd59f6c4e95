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
 * grows on five quiet ones in a row (fastnn._threads.next_team_free: a team one too large
 * stalls at every barrier).  Without /proc (not Linux) the cap is used.
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
#define TEAM_SHRINK_SAMPLES 2 /* fastnn._threads.TEAM_SHRINK_SAMPLES */
#define TEAM_GROW_SAMPLES 5   /* fastnn._threads.TEAM_GROW_SAMPLES */

static int team_free = -1;   /* the free CPUs last decided (-1: not sampled yet) */
static int team_recent[TEAM_GROW_SAMPLES]; /* the last raw samples, a ring */
static int team_seen = 0;    /* samples taken so far */
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

/* The free-CPU count after the samples `recent` (n of them, oldest first): lower when the
 * last TEAM_SHRINK_SAMPLES all lie below `current` (to the largest of them), higher when
 * the last TEAM_GROW_SAMPLES all lie above it (to the smallest), else `current`.  The same
 * function as fastnn._threads.next_team_free (a test compares the two). */
int fnn_jax_next_team_free(int current, const int* recent, int n) {
    int k, lo = 1 << 30, hi = -(1 << 30);
    if (n >= TEAM_SHRINK_SAMPLES) {
        for (k = n - TEAM_SHRINK_SAMPLES; k < n; ++k) hi = recent[k] > hi ? recent[k] : hi;
        if (hi < current) return hi;
    }
    if (n >= TEAM_GROW_SAMPLES) {
        for (k = n - TEAM_GROW_SAMPLES; k < n; ++k) lo = recent[k] < lo ? recent[k] : lo;
        if (lo > current) return lo;
    }
    return current;
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
        int current = team_free < 0 ? cpus : team_free, ordered[TEAM_GROW_SAMPLES], k, n;
        team_recent[team_seen % TEAM_GROW_SAMPLES] = free_cpus(threads, cpus);
        ++team_seen;
        n = team_seen < TEAM_GROW_SAMPLES ? team_seen : TEAM_GROW_SAMPLES;
        for (k = 0; k < n; ++k) ordered[k] = team_recent[(team_seen - n + k) % TEAM_GROW_SAMPLES];
        __atomic_store_n(&team_at, now, __ATOMIC_RELAXED);
        __atomic_store_n(&team_free, fnn_jax_next_team_free(current, ordered, n),
                         __ATOMIC_RELEASE);
        __atomic_store_n(&team_busy, 0, __ATOMIC_RELEASE);
    }
    free = __atomic_load_n(&team_free, __ATOMIC_ACQUIRE);
    if (free < 0 || free >= threads) return threads;
    return free > 1 ? free : 1;
}
