// CPU kernel and XLA FFI handler for the puff advantage (see advantage_cpu.h).
#include "advantage_cpu.h"

#include <cstdint>
#include <vector>

#include "advantage_shape.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace puffjax {
namespace {

constexpr int kBlockRows = 8;  // measured best of {4, 8, 12, 16, 32} on x86-64

// Phase 1 for one row: TD errors into adv[0..H-2], adv[H-1] = 0, and the
// recurrence coefficients gamma * lambda * c * nnt into coef[0..H-2].
inline void RowTerms(const float* __restrict v, const float* __restrict r,
                     const float* __restrict d, const float* __restrict q,
                     float* __restrict adv, float* __restrict coef,
                     int64_t horizon, float gamma, float gl, float rho_clip,
                     float c_clip) {
  for (int64_t t = 0; t < horizon - 1; ++t) {
    const float nnt = 1.0f - d[t + 1];
    const float rho = MinKeepNaN(q[t], rho_clip);
    const float c = MinKeepNaN(q[t], c_clip);
    adv[t] = rho * (r[t + 1] + gamma * v[t + 1] * nnt - v[t]);
    coef[t] = gl * c * nnt;
  }
  adv[horizon - 1] = 0.0f;
}

}  // namespace

void PuffAdvantageCpuKernel(const float* values, const float* rewards,
                            const float* terminals, const float* ratio,
                            float* advantages, int64_t rows, int64_t horizon,
                            float gamma, float gae_lambda, float rho_clip,
                            float c_clip) {
  if (rows <= 0 || horizon <= 0) return;
  if (horizon == 1) {
    for (int64_t s = 0; s < rows; ++s) advantages[s] = 0.0f;
    return;
  }
  const float gl = gamma * gae_lambda;
  std::vector<float> coef_storage(static_cast<size_t>(kBlockRows) * horizon);
  float* __restrict coef = coef_storage.data();

  for (int64_t s0 = 0; s0 < rows; s0 += kBlockRows) {
    const int64_t nb = rows - s0 < kBlockRows ? rows - s0 : kBlockRows;
    float* __restrict adv = advantages + s0 * horizon;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t o = (s0 + b) * horizon;
      RowTerms(values + o, rewards + o, terminals + o, ratio + o,
               adv + b * horizon, coef + b * horizon, horizon, gamma, gl,
               rho_clip, c_clip);
    }
    if (nb == kBlockRows) {
      // Phase 2: kBlockRows independent recurrences interleaved.
      float x[kBlockRows];
      for (int b = 0; b < kBlockRows; ++b) x[b] = 0.0f;
      for (int64_t t = horizon - 2; t >= 0; --t) {
        for (int b = 0; b < kBlockRows; ++b) {
          x[b] = adv[b * horizon + t] + coef[b * horizon + t] * x[b];
          adv[b * horizon + t] = x[b];
        }
      }
    } else {
      for (int64_t b = 0; b < nb; ++b) {
        float x = 0.0f;
        float* a = adv + b * horizon;
        const float* c = coef + b * horizon;
        for (int64_t t = horizon - 2; t >= 0; --t) {
          x = a[t] + c[t] * x;
          a[t] = x;
        }
      }
    }
  }
}

namespace {

// Rows = product of all dimensions but the last (extra leading dimensions come
// from vmap's broadcast_all), H = last dimension.
ffi::Error PuffAdvantageCpuImpl(ffi::Buffer<ffi::F32> values,
                                ffi::Buffer<ffi::F32> rewards,
                                ffi::Buffer<ffi::F32> terminals,
                                ffi::Buffer<ffi::F32> ratio, float gamma,
                                float gae_lambda, float rho_clip, float c_clip,
                                ffi::ResultBuffer<ffi::F32> advantages) {
  int64_t rows, horizon;
  ffi::Error shape = AdvantageShape(values, rewards, terminals, ratio, advantages, &rows, &horizon);
  if (shape.failure()) return shape;
  PuffAdvantageCpuKernel(values.typed_data(), rewards.typed_data(),
                         terminals.typed_data(), ratio.typed_data(),
                         advantages->typed_data(), rows, horizon, gamma,
                         gae_lambda, rho_clip, c_clip);
  return ffi::Error::Success();
}

}  // namespace
}  // namespace puffjax

XLA_FFI_DEFINE_HANDLER_SYMBOL(PuffjaxPuffAdvantageCpu, puffjax::PuffAdvantageCpuImpl,
                              puffjax::AdvantageBinding(ffi::Ffi::Bind()));
