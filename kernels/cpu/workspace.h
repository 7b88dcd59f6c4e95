/* Per-thread scratch that outlives a call: fnn_workspace(slot, bytes) returns a 64-byte
 * aligned buffer of at least `bytes`, owned by the calling thread, kept for its next call.
 *
 * Kernels whose scratch is megabytes (Winograd's transformed tiles) would otherwise
 * allocate it afresh on every call, and a fresh allocation of that size is a fresh mmap:
 * every page faults on first touch, which costs more than a small kernel's arithmetic.
 * OpenMP keeps its worker threads between parallel regions, so their workspaces are
 * reused call after call.  A buffer is freed when its thread exits (a pthread key
 * destructor), or replaced by a larger one when a call needs more.  Contents are not
 * preserved and not zeroed.  Each slot is independent; a kernel uses distinct slots for
 * the buffers it needs at the same time.
 */
#ifndef FNN_WORKSPACE_H
#define FNN_WORKSPACE_H

#include <stddef.h>
#include <stdlib.h>

#include "cpu_features.h"

#define FNN_WORKSPACE_SLOTS 8

#if defined(_WIN32)
/* No thread-exit hook here: allocate per call (fnn_workspace_release frees). */
static void* fnn_workspace(int slot, size_t bytes) {
    (void)slot;
    return fnn_aligned_alloc_64(bytes);
}
static void fnn_workspace_release(void* p) { fnn_aligned_free_64(p); }
#else
#include <pthread.h>

typedef struct {
    void* ptr[FNN_WORKSPACE_SLOTS];
    size_t size[FNN_WORKSPACE_SLOTS];
} fnn_workspace_set;

static pthread_key_t fnn_workspace_key;
static pthread_once_t fnn_workspace_once = PTHREAD_ONCE_INIT;

static void fnn_workspace_destroy(void* p) {
    fnn_workspace_set* set = (fnn_workspace_set*)p;
    for (int i = 0; i < FNN_WORKSPACE_SLOTS; ++i) fnn_aligned_free_64(set->ptr[i]);
    free(set);
}

static void fnn_workspace_init(void) {
    pthread_key_create(&fnn_workspace_key, fnn_workspace_destroy);
}

/* The calling thread's buffer `slot` (0 .. FNN_WORKSPACE_SLOTS-1) of at least `bytes`,
 * or NULL when memory runs out. */
static void* fnn_workspace(int slot, size_t bytes) {
    pthread_once(&fnn_workspace_once, fnn_workspace_init);
    fnn_workspace_set* set = (fnn_workspace_set*)pthread_getspecific(fnn_workspace_key);
    if (set == NULL) {
        set = (fnn_workspace_set*)calloc(1, sizeof(fnn_workspace_set));
        if (set == NULL) return NULL;
        if (pthread_setspecific(fnn_workspace_key, set) != 0) {
            free(set);
            return NULL;
        }
    }
    if (bytes == 0) bytes = 64;
    if (set->size[slot] < bytes) {
        fnn_aligned_free_64(set->ptr[slot]);
        set->ptr[slot] = fnn_aligned_alloc_64(bytes);
        set->size[slot] = set->ptr[slot] != NULL ? bytes : 0;
    }
    return set->ptr[slot];
}

/* Give back a buffer from fnn_workspace (it stays with its thread: nothing to do). */
static void fnn_workspace_release(void* p) { (void)p; }
#endif

#endif /* FNN_WORKSPACE_H */
