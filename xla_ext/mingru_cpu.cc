// The minGRU recurrence for XLA's CPU backend: forward and backward as XLA FFI custom calls
// (handler symbols PuffjaxMinGruForwardCpu and PuffjaxMinGruBackwardCpu, exported to Python
// by ffi_module.cc); puffjax/mingru.py wraps them in a custom_vjp.
//
// Why: the recurrence is elementwise, h_t = (1 - sigmoid(z_t)) * h_{t-1} + sigmoid(z_t) *
// g(c_t), so it is bound by memory traffic. jax.lax.associative_scan runs it as log2(T)
// levels of strided slices and a lax.scan as T steps of small thunks; on XLA's CPU backend
// both take ten to twenty times as long as one pass over the data. Here each row runs all T
// steps in one loop over its own contiguous [T, H] block, the gate and candidate activations
// computed on the way.
//
// Shapes: B rows, T steps, H units (a multiple of 8).
//   forward:  z[B,T,H], c[B,T,H] (gate and candidate pre-activations), reset[B,T], h0[B,H]
//             -> hs[B,T,H]
//   backward: dhs[B,T,H], dhT[B,H], z, c, reset, h0, hs -> dz[B,T,H], dc[B,T,H], dh0[B,H]
// g(x) = x + 0.5 for x >= 0, sigmoid(x) below. Where reset[b, t] is set, the state entering
// step t is zero (a new episode), so no gradient flows to the steps before it.
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_kernels.h"

namespace ffi = xla::ffi;

namespace puffjax::cpu {
namespace {

constexpr int64_t kRows = 16;  // rows per task

#define PUFFJAX_CHECK(buf, name, ...) PUFFJAX_CHECK_SHAPE("mingru", buf, name, __VA_ARGS__)

// Rows [r0, r0 + n) through all T steps.
PUFFJAX_CLONES void ForwardRows(int64_t T, int64_t H, int64_t r0, int64_t n, const float* z,
                                const float* c, const bool* reset, const float* h0, float* hs) {
  const v8 zero = {}, one = zero + 1.0f, half = zero + 0.5f;
  for (int64_t row = r0; row < r0 + n; ++row) {
    const float* prev = h0 + row * H;  // the state entering step t
    for (int64_t t = 0; t < T; ++t) {
      const int64_t at = (row * T + t) * H;
      const bool cut = reset[row * T + t];
      for (int64_t j = 0; j < H; j += 8) {
        const v8 gate = Sigmoid(Load(z + at + j)), x = Load(c + at + j);
        const v8 cand = x >= zero ? x + half : Sigmoid(x);
        const v8 h = cut ? zero : Load(prev + j);
        Store(hs + at + j, (one - gate) * h + gate * cand);
      }
      prev = hs + at;
    }
  }
}

// Rows [r0, r0 + n), from step T - 1 back to 0.
PUFFJAX_CLONES void BackwardRows(int64_t T, int64_t H, int64_t r0, int64_t n, const float* dhs,
                                 const float* dh_t, const float* z, const float* c,
                                 const bool* reset, const float* h0, const float* hs, float* dz,
                                 float* dc, float* dh0) {
  const v8 zero = {}, one = zero + 1.0f, half = zero + 0.5f;
  thread_local std::vector<float> scratch;  // the gradient reaching h_t from step t + 1
  scratch.resize(static_cast<size_t>(H));
  float* dh = scratch.data();
  for (int64_t row = r0; row < r0 + n; ++row) {
    std::memcpy(dh, dh_t + row * H, sizeof(float) * H);
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t at = (row * T + t) * H;
      const bool cut = reset[row * T + t];
      const float* prev = t > 0 ? hs + at - H : h0 + row * H;
      for (int64_t j = 0; j < H; j += 8) {
        const v8 gate = Sigmoid(Load(z + at + j)), x = Load(c + at + j);
        const v8 s = Sigmoid(x);
        const v8 cand = x >= zero ? x + half : s;
        const v8 dcand = x >= zero ? one : s * (one - s);
        const v8 h = cut ? zero : Load(prev + j);
        const v8 d = Load(dhs + at + j) + Load(dh + j);
        Store(dz + at + j, d * (cand - h) * gate * (one - gate));
        Store(dc + at + j, d * gate * dcand);
        Store(dh + j, cut ? zero : d * (one - gate));
      }
    }
    std::memcpy(dh0 + row * H, dh, sizeof(float) * H);
  }
}

// Reads B, T, H from z [B, T, H] and checks H.
ffi::Error StateDims(ffi::Buffer<ffi::F32>& z, int64_t* B, int64_t* T, int64_t* H) {
  const auto dims = z.dimensions();
  if (dims.size() != 3 || dims[2] % 8 != 0) {
    return ffi::Error::InvalidArgument(
        "puffjax mingru: z must be [B, T, H] with H a multiple of 8, got " + Shape(dims));
  }
  *B = dims[0], *T = dims[1], *H = dims[2];
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> z, ffi::Buffer<ffi::F32> c,
                   ffi::Buffer<ffi::PRED> reset, ffi::Buffer<ffi::F32> h0,
                   ffi::ResultBuffer<ffi::F32> hs) {
  int64_t B, T, H;
  if (ffi::Error e = StateDims(z, &B, &T, &H); e.failure()) return e;
  PUFFJAX_CHECK(c, "candidate", B, T, H);
  PUFFJAX_CHECK(reset, "reset", B, T);
  PUFFJAX_CHECK(h0, "h0", B, H);
  PUFFJAX_CHECK(*hs, "hs", B, T, H);
  if (B == 0 || T == 0 || H == 0) return ffi::Error::Success();
  ParallelBlocks(pool, B, kRows, [&](int64_t r0, int64_t n) {
    ForwardRows(T, H, r0, n, z.typed_data(), c.typed_data(), reset.typed_data(), h0.typed_data(),
                hs->typed_data());
  });
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> dhs, ffi::Buffer<ffi::F32> dh_t,
                    ffi::Buffer<ffi::F32> z, ffi::Buffer<ffi::F32> c, ffi::Buffer<ffi::PRED> reset,
                    ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> hs,
                    ffi::ResultBuffer<ffi::F32> dz, ffi::ResultBuffer<ffi::F32> dc,
                    ffi::ResultBuffer<ffi::F32> dh0) {
  int64_t B, T, H;
  if (ffi::Error e = StateDims(z, &B, &T, &H); e.failure()) return e;
  PUFFJAX_CHECK(dhs, "dhs", B, T, H);
  PUFFJAX_CHECK(dh_t, "dh_T", B, H);
  PUFFJAX_CHECK(c, "candidate", B, T, H);
  PUFFJAX_CHECK(reset, "reset", B, T);
  PUFFJAX_CHECK(h0, "h0", B, H);
  PUFFJAX_CHECK(hs, "hs", B, T, H);
  PUFFJAX_CHECK(*dz, "dz", B, T, H);
  PUFFJAX_CHECK(*dc, "dc", B, T, H);
  PUFFJAX_CHECK(*dh0, "dh0", B, H);
  if (B == 0 || H == 0) return ffi::Error::Success();
  ParallelBlocks(pool, B, kRows, [&](int64_t r0, int64_t n) {
    BackwardRows(T, H, r0, n, dhs.typed_data(), dh_t.typed_data(), z.typed_data(), c.typed_data(),
                 reset.typed_data(), h0.typed_data(), hs.typed_data(), dz->typed_data(),
                 dc->typed_data(), dh0->typed_data());
  });
  return ffi::Error::Success();
}

#undef PUFFJAX_CHECK

}  // namespace
}  // namespace puffjax::cpu

XLA_FFI_DEFINE_HANDLER_SYMBOL(PuffjaxMinGruForwardCpu, puffjax::cpu::Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()   // z
                                  .Arg<ffi::Buffer<ffi::F32>>()   // candidate
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // reset
                                  .Arg<ffi::Buffer<ffi::F32>>()   // h0
                                  .Ret<ffi::Buffer<ffi::F32>>()   // hs
);

XLA_FFI_DEFINE_HANDLER_SYMBOL(PuffjaxMinGruBackwardCpu, puffjax::cpu::Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dhs
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dh_T
                                  .Arg<ffi::Buffer<ffi::F32>>()   // z
                                  .Arg<ffi::Buffer<ffi::F32>>()   // candidate
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // reset
                                  .Arg<ffi::Buffer<ffi::F32>>()   // h0
                                  .Arg<ffi::Buffer<ffi::F32>>()   // hs
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dz
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dc
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dh0
);
