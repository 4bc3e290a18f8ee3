// CUDA kernel and XLA FFI handler for the puff advantage (recurrence in
// advantage_cpu.h). Compiled by nvcc with CUDA + XLA FFI headers only.
//
// Layout: row-major [rows, H], each row contiguous along H. PufferLib's kernel
// runs one thread per row: consecutive threads then read addresses H * 4 bytes
// apart, so a warp touches 32 cache lines per load. Here a GROUP of G lanes
// (G a power of two <= 32, a sub-warp) cooperates on one row: segment by
// segment from the right, lane l handles t = j*G + l, so a group's loads are
// contiguous and coalesced. The recurrence
//     A[t] = delta[t] + coef[t] * A[t+1]
// is a composition of affine maps f_t(x) = delta[t] + coef[t] * x, which is
// associative: a reverse inclusive scan over the segment with warp shuffles
// (log2 G steps) gives every lane F_l = f_l o ... o f_{G-1}, then
// A[t] = F_l(carry) where carry is A at the first element right of the
// segment. G is chosen from H (GroupSize: the smallest power of two >= H, at
// most 32), not by the caller: H = 2 runs G = 2, H = 3..4 G = 4, 5..8 G = 8,
// 9..16 G = 16, longer horizons G = 32. G = 1 (PufferLib's one thread per row)
// is left only for H = 1, which puff_advantage rejects before the call.
#include <cstdint>
#include <string>

#include <cuda_runtime.h>

#include "xla/ffi/api/ffi.h"
#include "advantage_cuda.h"
#include "advantage_shape.h"

namespace ffi = xla::ffi;

namespace puffjax {
namespace {

constexpr int kThreadsPerBlock = 256;

__device__ __forceinline__ float MinKeepNaN(float x, float clip) {
  return clip < x ? clip : x;  // NaN in x propagates
}

template <int G>
__global__ void __launch_bounds__(kThreadsPerBlock)
PuffAdvantageKernel(const float* __restrict__ values,
                    const float* __restrict__ rewards,
                    const float* __restrict__ terminals,
                    const float* __restrict__ ratio,
                    float* __restrict__ advantages, int64_t rows,
                    int64_t horizon, float gamma, float gl, float rho_clip,
                    float c_clip) {
  const int64_t gid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = gid / G;
  const int lane = static_cast<int>(gid % G);
  // No early return: every lane of the warp must take part in the shuffles.
  const bool active = row < rows;
  const int64_t base = active ? row * horizon : 0;
  const float* v = values + base;
  const float* r = rewards + base;
  const float* d = terminals + base;
  const float* q = ratio + base;
  float* a = advantages + base;

  const int64_t nseg = (horizon + G - 1) / G;
  float carry = 0.0f;
  for (int64_t j = nseg - 1; j >= 0; --j) {
    const int64_t t = j * G + lane;
    float c = 1.0f, b = 0.0f;  // identity map for t >= H
    if (t == horizon - 1) {
      c = 0.0f;  // A[H-1] = 0 whatever comes after
    } else if (t < horizon - 1 && active) {
      const float nnt = 1.0f - __ldg(d + t + 1);
      const float qt = __ldg(q + t);
      const float rho = MinKeepNaN(qt, rho_clip);
      const float ct = MinKeepNaN(qt, c_clip);
      b = rho * (__ldg(r + t + 1) + gamma * __ldg(v + t + 1) * nnt - __ldg(v + t));
      c = gl * ct * nnt;
    }
    if constexpr (G > 1) {
#pragma unroll
      for (int off = 1; off < G; off <<= 1) {
        const float c2 = __shfl_down_sync(0xffffffffu, c, off, G);
        const float b2 = __shfl_down_sync(0xffffffffu, b, off, G);
        if (lane + off < G) {  // (c, b) <- (c, b) o (c2, b2)
          b = b + c * b2;
          c = c * c2;
        }
      }
    }
    const float out = b + c * carry;
    if (active && t < horizon) a[t] = out;
    if constexpr (G > 1) {
      carry = __shfl_sync(0xffffffffu, out, 0, G);
    } else {
      carry = out;
    }
  }
}

template <int G>
cudaError_t Launch(cudaStream_t stream, const float* v, const float* r,
                   const float* d, const float* q, float* a, int64_t rows,
                   int64_t horizon, float gamma, float gl, float rho_clip,
                   float c_clip) {
  const int64_t threads = rows * G;
  const int64_t blocks = (threads + kThreadsPerBlock - 1) / kThreadsPerBlock;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
  PuffAdvantageKernel<G><<<static_cast<unsigned>(blocks), kThreadsPerBlock, 0,
                           stream>>>(v, r, d, q, a, rows, horizon, gamma, gl,
                                     rho_clip, c_clip);
  return cudaGetLastError();
}

// Lanes per row for horizon H: the smallest power of two >= H, at most 32.
int GroupSize(int64_t horizon) {
  int g = 1;
  while (g < 32 && g < horizon) g <<= 1;
  return g;
}

ffi::Error PuffAdvantageCudaImpl(cudaStream_t stream,
                                 ffi::Buffer<ffi::F32> values,
                                 ffi::Buffer<ffi::F32> rewards,
                                 ffi::Buffer<ffi::F32> terminals,
                                 ffi::Buffer<ffi::F32> ratio, float gamma,
                                 float gae_lambda, float rho_clip,
                                 float c_clip,
                                 ffi::ResultBuffer<ffi::F32> advantages) {
  int64_t rows, horizon;
  ffi::Error shape = AdvantageShape(values, rewards, terminals, ratio, advantages, &rows, &horizon);
  if (shape.failure()) return shape;
  if (rows == 0 || horizon == 0) return ffi::Error::Success();
  const int group = GroupSize(horizon);

  const float* v = values.typed_data();
  const float* r = rewards.typed_data();
  const float* d = terminals.typed_data();
  const float* q = ratio.typed_data();
  float* a = advantages->typed_data();
  const float gl = gamma * gae_lambda;
  cudaError_t err;
  switch (group) {
    case 1: err = Launch<1>(stream, v, r, d, q, a, rows, horizon, gamma, gl, rho_clip, c_clip); break;
    case 2: err = Launch<2>(stream, v, r, d, q, a, rows, horizon, gamma, gl, rho_clip, c_clip); break;
    case 4: err = Launch<4>(stream, v, r, d, q, a, rows, horizon, gamma, gl, rho_clip, c_clip); break;
    case 8: err = Launch<8>(stream, v, r, d, q, a, rows, horizon, gamma, gl, rho_clip, c_clip); break;
    case 16: err = Launch<16>(stream, v, r, d, q, a, rows, horizon, gamma, gl, rho_clip, c_clip); break;
    case 32: err = Launch<32>(stream, v, r, d, q, a, rows, horizon, gamma, gl, rho_clip, c_clip); break;
    default:  // unreachable: GroupSize returns one of the above
      return ffi::Error::Internal("puff_advantage: no CUDA kernel for group size " +
                                  std::to_string(group));
  }
  if (err != cudaSuccess) {
    return ffi::Error::Internal(std::string("puff_advantage: CUDA kernel launch failed: ") +
                                cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
  }
  return ffi::Error::Success();
}

}  // namespace
}  // namespace puffjax

// Command-buffer compatible: the handler only enqueues a kernel on XLA's stream (no host
// synchronisation, no allocation), so XLA may capture it in a CUDA graph.
XLA_FFI_DEFINE_HANDLER_SYMBOL(PuffjaxPuffAdvantageCuda, puffjax::PuffAdvantageCudaImpl,
                              puffjax::AdvantageBinding(
                                  ffi::Ffi::Bind().Ctx<ffi::PlatformStream<cudaStream_t>>()),
                              {ffi::Traits::kCmdBufferCompatible});
