/* A caching allocator for the large arrays fastnn returns, installed as NumPy's data
 * allocator only while fastnn allocates them (kernels/cpu/output_cache.pyx).
 *
 * Why: a freshly allocated multi-megabyte block is a fresh mmap, and every page of it
 * faults on first touch.  On a virtual machine a fault costs microseconds, so a 25 MB
 * convolution output pays ~6000 faults, 10-25 ms, on top of a 10 ms convolution.  glibc
 * keeps freed memory for reuse only until something trims the heap, which another
 * library's large frees do all the time.  This cache keeps the blocks of fastnn's own
 * outputs when NumPy frees them and hands them back for the next output of the same size,
 * so a training loop stops faulting after its first step.
 *
 * Every block carries a 64-byte header (its kind and size) and FNN_CACHE_TAIL readable
 * bytes after its data.  Blocks smaller than FNN_CACHE_MIN go straight to malloc/free;
 * larger ones, when freed, join a list of free blocks; an allocation takes a free block
 * of exactly its size (sizes repeat exactly from step to step), else a new one.  The
 * free blocks are capped in total bytes (fnn_cache_limit); past the cap the oldest are
 * returned to the system.  All operations take one mutex.
 */
#ifndef FNN_OUTPUT_CACHE_H
#define FNN_OUTPUT_CACHE_H

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_features.h"

#define FNN_CACHE_MIN ((size_t)1 << 20) /* blocks below 1 MiB are not cached */
#define FNN_CACHE_HEADER ((size_t)64)
/* Readable bytes after every block's data (never written by fastnn): kernels that load
 * whole vectors past the end of an array (conv_direct's backward passes) read an output
 * of this cache in place instead of a copy with slack (output_cache.pyx's
 * readable_after). */
#define FNN_CACHE_TAIL ((size_t)512)
#define FNN_CACHE_SLOTS 64

typedef struct {
    void* base[FNN_CACHE_SLOTS]; /* free blocks (the header's address), oldest first */
    size_t size[FNN_CACHE_SLOTS];
    int count;
    size_t bytes;                /* total bytes held free */
    size_t limit;                /* most bytes held free */
    size_t hits, misses;
    pthread_mutex_t lock;
} fnn_cache_state;

static fnn_cache_state fnn_cache = {
    .count = 0, .bytes = 0, .limit = (size_t)512 << 20, .hits = 0, .misses = 0,
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

static void* fnn_cache_take(size_t size) {
    void* found = NULL;
    pthread_mutex_lock(&fnn_cache.lock);
    for (int i = fnn_cache.count - 1; i >= 0; --i) { /* newest first: warmest in cache */
        if (fnn_cache.size[i] == size) {
            found = fnn_cache.base[i];
            fnn_cache.bytes -= size;
            memmove(&fnn_cache.base[i], &fnn_cache.base[i + 1],
                    (size_t)(fnn_cache.count - i - 1) * sizeof(void*));
            memmove(&fnn_cache.size[i], &fnn_cache.size[i + 1],
                    (size_t)(fnn_cache.count - i - 1) * sizeof(size_t));
            --fnn_cache.count;
            break;
        }
    }
    if (found != NULL) ++fnn_cache.hits;
    else ++fnn_cache.misses;
    pthread_mutex_unlock(&fnn_cache.lock);
    return found;
}

/* Keep `base` (a block of `size` bytes, header included) for reuse, or free it. */
static void fnn_cache_give(void* base, size_t size) {
    void* evicted[FNN_CACHE_SLOTS + 1];
    int n_evicted = 0;
    pthread_mutex_lock(&fnn_cache.lock);
    if (size > fnn_cache.limit) {
        evicted[n_evicted++] = base;
    } else {
        while (fnn_cache.count > 0 &&
               (fnn_cache.count == FNN_CACHE_SLOTS || fnn_cache.bytes + size > fnn_cache.limit)) {
            evicted[n_evicted++] = fnn_cache.base[0];
            fnn_cache.bytes -= fnn_cache.size[0];
            memmove(&fnn_cache.base[0], &fnn_cache.base[1],
                    (size_t)(fnn_cache.count - 1) * sizeof(void*));
            memmove(&fnn_cache.size[0], &fnn_cache.size[1],
                    (size_t)(fnn_cache.count - 1) * sizeof(size_t));
            --fnn_cache.count;
        }
        fnn_cache.base[fnn_cache.count] = base;
        fnn_cache.size[fnn_cache.count] = size;
        ++fnn_cache.count;
        fnn_cache.bytes += size;
    }
    pthread_mutex_unlock(&fnn_cache.lock);
    for (int i = 0; i < n_evicted; ++i) fnn_aligned_free_64(evicted[i]);
}

/* Return every free block to the system. */
static void fnn_cache_clear(void) {
    pthread_mutex_lock(&fnn_cache.lock);
    for (int i = 0; i < fnn_cache.count; ++i) fnn_aligned_free_64(fnn_cache.base[i]);
    fnn_cache.count = 0;
    fnn_cache.bytes = 0;
    pthread_mutex_unlock(&fnn_cache.lock);
}

/* ---- the NumPy allocator (PyDataMemAllocator's four functions) ---------------------- */

/* Every block starts with a 64-byte header: a tag saying which kind it is (so that a free
 * never depends on the size NumPy passes) and its total size. */
#define FNN_CACHE_TAG_SMALL ((size_t)0x66736d6c616c6c31ULL)
#define FNN_CACHE_TAG_LARGE ((size_t)0x66736c617267653aULL)

static void* fnn_cache_malloc(void* ctx, size_t size) {
    (void)ctx;
    const size_t total = (size ? size : 1) + FNN_CACHE_HEADER + FNN_CACHE_TAIL;
    size_t head[2] = {size < FNN_CACHE_MIN ? FNN_CACHE_TAG_SMALL : FNN_CACHE_TAG_LARGE, total};
    char* base;
    if (head[0] == FNN_CACHE_TAG_SMALL) {
        base = (char*)malloc(total);
    } else {
        base = (char*)fnn_cache_take(total);
        if (base == NULL) base = (char*)fnn_aligned_alloc_64(total);
    }
    if (base == NULL) return NULL;
    memcpy(base, head, sizeof(head));
    return base + FNN_CACHE_HEADER;
}

static void* fnn_cache_calloc(void* ctx, size_t nelem, size_t elsize) {
    if (elsize != 0 && nelem > (size_t)-1 / elsize) return NULL;
    const size_t size = nelem * elsize;
    void* p = fnn_cache_malloc(ctx, size);
    if (p != NULL) memset(p, 0, size);
    return p;
}

static void fnn_cache_free(void* ctx, void* ptr, size_t size) {
    (void)ctx;
    (void)size;
    if (ptr == NULL) return;
    char* base = (char*)ptr - FNN_CACHE_HEADER;
    size_t head[2];
    memcpy(head, base, sizeof(head));
    if (head[0] == FNN_CACHE_TAG_LARGE) fnn_cache_give(base, head[1]);
    else free(base);
}

static void* fnn_cache_realloc(void* ctx, void* ptr, size_t new_size) {
    if (ptr == NULL) return fnn_cache_malloc(ctx, new_size);
    size_t head[2];
    memcpy(head, (char*)ptr - FNN_CACHE_HEADER, sizeof(head));
    const size_t old_size = head[1] - FNN_CACHE_HEADER - FNN_CACHE_TAIL;
    void* fresh = fnn_cache_malloc(ctx, new_size);
    if (fresh == NULL) return NULL;
    memcpy(fresh, ptr, old_size < new_size ? old_size : new_size);
    fnn_cache_free(ctx, ptr, old_size);
    return fresh;
}

#endif /* FNN_OUTPUT_CACHE_H */
