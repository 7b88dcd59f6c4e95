// A CPU emulation of the CUDA features kernels/cuda/*.cu use, so that the tests can run
// those exact kernels with g++ on machines without a GPU (tests/test_cupy_backend_emulator.py
// compiles "#include this header + a .cu source + launch stubs" into a shared library).
// It is not part of the installed package and never runs in production.
//
// What it models: threadIdx/blockIdx/blockDim/gridDim, __shared__ memory per block,
// __syncthreads() as a real barrier (each CUDA thread of a block is a fiber; a barrier
// switches to the next fiber), and the bit-cast intrinsics the kernels call.  Blocks run
// one after another, their threads interleaved only at barriers (in forward, then reverse,
// order, alternately).  A barrier that some
// threads of a block reach while others have already returned is reported as an error
// (undefined behaviour on a GPU).
//
// What it does not model: warps and warp intrinsics (the kernels use none), races between
// threads (fibers only switch at barriers, so a race that a GPU would expose can pass
// here), float rounding of GPU math functions and FMA contraction, flush-to-zero,
// memory spaces, and launch limits beyond what the Python side checks.
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
// Blocks run one at a time, so one static array per kernel is exactly "one per block".
#define __shared__ static

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline dim3 threadIdx, blockIdx, blockDim, gridDim;

inline float __int_as_float(int bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

inline double __longlong_as_double(long long bits) {
    double value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

namespace fastnn_emu {

constexpr size_t STACK_BYTES = 128 * 1024;

struct Fiber {
    ucontext_t context;
    std::unique_ptr<char[]> stack;
    dim3 index;
    bool done = false;
    bool waiting = false;
};

inline ucontext_t scheduler;
inline std::vector<Fiber> fibers;
inline size_t current = 0;
inline void (*body)(void*) = nullptr;
inline void* body_data = nullptr;

inline void fiber_main() {
    body(body_data);
    fibers[current].done = true;  // returning resumes `scheduler` (uc_link)
}

inline void barrier() {
    Fiber& self = fibers[current];
    self.waiting = true;
    swapcontext(&self.context, &scheduler);
    threadIdx = fibers[current].index;  // the scheduler set it; reload for clarity
}

// Run one block: every thread from the start to a barrier or its end, round after round.
inline void run_block(unsigned threads) {
    if (fibers.size() < threads) fibers.resize(threads);
    for (unsigned t = 0; t < threads; ++t) {
        Fiber& f = fibers[t];
        if (!f.stack) f.stack.reset(new char[STACK_BYTES]);
        f.index.x = t % blockDim.x;
        f.index.y = (t / blockDim.x) % blockDim.y;
        f.index.z = t / (blockDim.x * blockDim.y);
        f.done = f.waiting = false;
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = f.stack.get();
        f.context.uc_stack.ss_size = STACK_BYTES;
        f.context.uc_link = &scheduler;
        makecontext(&f.context, fiber_main, 0);
    }
    for (unsigned round = 0;; ++round) {
        unsigned finished = 0, waiting = 0;
        for (unsigned step = 0; step < threads; ++step) {
            // Odd rounds run the threads in reverse order, so a read of shared memory that
            // lacks its barrier sees stale data whichever thread writes it.
            const unsigned t = round % 2 ? threads - 1 - step : step;
            Fiber& f = fibers[t];
            if (f.done) continue;
            f.waiting = false;
            current = t;
            threadIdx = f.index;
            swapcontext(&scheduler, &f.context);
        }
        for (unsigned t = 0; t < threads; ++t) {
            finished += fibers[t].done;
            waiting += fibers[t].waiting && !fibers[t].done;
        }
        if (finished == threads) return;
        if (finished > 0) {
            throw std::runtime_error(
                "__syncthreads() reached by " + std::to_string(waiting) + " threads of a block "
                "whose other " + std::to_string(finished) + " threads had returned");
        }
    }
}

template <typename T>
struct TypeCode;
template <>
struct TypeCode<float> {
    static std::string get() { return "f32"; }
};
template <>
struct TypeCode<double> {
    static std::string get() { return "f64"; }
};
template <>
struct TypeCode<int> {
    static std::string get() { return "i32"; }
};
template <>
struct TypeCode<long long> {
    static std::string get() { return "i64"; }
};
template <typename T>
struct TypeCode<T*> {
    static std::string get() { return TypeCode<std::remove_cv_t<T>>::get() + "*"; }
};

// "f32*,f32*,i64": the kernel's parameter types, for the Python side to check arguments.
template <typename... A>
std::string signature(void (*)(A...)) {
    std::string text;
    ((text += (text.empty() ? "" : ",") + TypeCode<std::remove_cv_t<A>>::get()), ...);
    return text;
}

template <typename... A>
struct Call {
    void (*kernel)(A...);
    void** args;

    template <size_t... I>
    void invoke(std::index_sequence<I...>) {
        kernel(*static_cast<std::remove_cv_t<A>*>(args[I])...);
    }

    static void run(void* self) {
        static_cast<Call*>(self)->invoke(std::index_sequence_for<A...>{});
    }
};

// Launch `kernel` on grid x block; args[i] points at the value of parameter i.
// Returns 0, or 1 with a message in `error`.
template <typename... A>
int launch(void (*kernel)(A...), const unsigned* grid, const unsigned* block, void** args,
           char* error, int error_size) {
    Call<A...> call{kernel, args};
    body = &Call<A...>::run;
    body_data = &call;
    gridDim = dim3{grid[0], grid[1], grid[2]};
    blockDim = dim3{block[0], block[1], block[2]};
    const unsigned threads = block[0] * block[1] * block[2];
    try {
        for (unsigned z = 0; z < grid[2]; ++z) {
            for (unsigned y = 0; y < grid[1]; ++y) {
                for (unsigned x = 0; x < grid[0]; ++x) {
                    blockIdx = dim3{x, y, z};
                    run_block(threads);
                }
            }
        }
    } catch (const std::exception& e) {
        snprintf(error, (size_t)error_size, "%s", e.what());
        return 1;
    }
    return 0;
}

}  // namespace fastnn_emu

inline void __syncthreads() { fastnn_emu::barrier(); }
