// Shared by the fused CPU kernels (lstm_cpu.cc, mingru_cpu.cc), in namespace puffjax::cpu:
// eight-float vectors with their exp / sigmoid / tanh, the per-function CPU dispatch, XLA's
// thread pool over blocks of rows, and shape checks.
#ifndef PUFFJAX_CPU_KERNELS_H
#define PUFFJAX_CPU_KERNELS_H

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

// The block functions are compiled twice (AVX2+FMA and baseline x86-64); the loader picks
// the one this CPU runs. Helpers are always inlined, so each copy gets its own instructions.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define PUFFJAX_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PUFFJAX_CLONES
#endif
#define PUFFJAX_INLINE inline __attribute__((always_inline))

namespace puffjax::cpu {

// Eight floats in one AVX register; GCC splits them into two SSE registers on older CPUs.
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));  // for unaligned loads
typedef int32_t v8i __attribute__((vector_size(32)));

PUFFJAX_INLINE v8 Load(const float* p) { return *reinterpret_cast<const v8u*>(p); }
PUFFJAX_INLINE void Store(float* p, v8 v) { *reinterpret_cast<v8u*>(p) = v; }

// exp(x) as in Cephes: 2^k * p(r) with x = k ln2 + r, |r| <= ln2 / 2; relative error ~1e-7.
PUFFJAX_INLINE v8 Exp(v8 x) {
  x = x < -87.0f ? v8{} - 87.0f : x;
  x = x > 88.0f ? v8{} + 88.0f : x;
  const v8 round = v8{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  v8 k = (x * 1.44269504088896341f + round) - round;
  v8 r = x - k * 0.693359375f + k * 2.12194440e-4f;
  v8 p = v8{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  v8i bits = (__builtin_convertvector(k, v8i) + 127) << 23;
  v8 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

PUFFJAX_INLINE v8 Sigmoid(v8 x) { return 1.0f / (1.0f + Exp(-x)); }
PUFFJAX_INLINE v8 Tanh(v8 x) { return 2.0f / (1.0f + Exp(-2.0f * x)) - 1.0f; }

// Runs fn(first row, rows) for every block of `block` rows on the calling thread and XLA's
// intra-op pool. Blocks are claimed from a shared counter, so the call finishes even if no pool
// thread ever picks its task up; a late task finds nothing left and only touches `work`.
struct Work {
  std::atomic<int64_t> next{0}, done{0};
  int64_t count = 0;
  std::function<void(int64_t)> fn;
  void Drain() {
    for (int64_t i; (i = next.fetch_add(1)) < count;) {
      fn(i);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

inline void ParallelBlocks(xla::ffi::ThreadPool& pool, int64_t rows, int64_t block,
                           std::function<void(int64_t, int64_t)> fn) {
  auto work = std::make_shared<Work>();
  work->count = (rows + block - 1) / block;
  work->fn = [&fn, rows, block](int64_t b) { fn(b * block, std::min<int64_t>(block, rows - b * block)); };
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), work->count) - 1;
  for (int64_t i = 0; i < helpers; ++i) pool.Schedule([work] { work->Drain(); });
  work->Drain();
  while (work->done.load(std::memory_order_acquire) < work->count) std::this_thread::yield();
}

inline std::string Shape(xla::ffi::Span<const int64_t> dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

template <typename Buf>
bool HasShape(const Buf& buf, std::initializer_list<int64_t> want) {
  const auto dims = buf.dimensions();
  return dims.size() == want.size() && std::equal(want.begin(), want.end(), dims.begin());
}

inline xla::ffi::Error Mismatch(const char* kernel, const char* name,
                                xla::ffi::Span<const int64_t> got,
                                std::initializer_list<int64_t> want) {
  std::vector<int64_t> w(want);
  return xla::ffi::Error::InvalidArgument(std::string("puffjax ") + kernel + ": " + name +
                                          " has shape " + Shape(got) + ", expected " +
                                          Shape(xla::ffi::Span<const int64_t>(w.data(), w.size())));
}

}  // namespace puffjax::cpu

// Returns an InvalidArgument error from the handler unless `buf` has the shape given.
#define PUFFJAX_CHECK_SHAPE(kernel, buf, name, ...)                                           \
  do {                                                                                        \
    if (!::puffjax::cpu::HasShape(buf, {__VA_ARGS__}))                                        \
      return ::puffjax::cpu::Mismatch(kernel, name, (buf).dimensions(), {__VA_ARGS__});       \
  } while (0)

#endif  // PUFFJAX_CPU_KERNELS_H
