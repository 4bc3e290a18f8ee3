// A fused LSTM recurrence for XLA's CPU backend: forward and backward as XLA FFI custom
// calls (handler symbols PuffjaxLstmForwardCpu and PuffjaxLstmBackwardCpu, exported to
// Python by ffi_module.cc); puffjax/lstm.py wraps them in a custom_vjp.
//
// Why: under lax.scan, XLA's CPU backend runs every time step as a chain of small thunks
// (one matmul, several elementwise fusions). For Breakout's training minibatch (512 rows,
// 64 steps, 128 units) that measured about 2.9 ms per step forward, and the recurrence was
// most of the training time. Here a block of rows runs all T steps with its state in L1,
// and the gate nonlinearities are applied right after the matmul that produces them.
//
// Shapes: B rows, T steps, H units (a multiple of 16), G = 4H gates in the order i, f, g, o.
//   forward:  gx[B,T,G] (= x @ W_x + b), reset[B,T], wh[H,G], c0[B,H], h0[B,H]
//             -> hs[B,T,H], cs[B,T,H], acts[B,T,G]
//             acts holds sigmoid(i), sigmoid(f), tanh(g), sigmoid(o) for the backward pass;
//             it is written only when the caller asks for it (a non-empty buffer).
//   backward: dhs[B,T,H], dcT[B,H], dhT[B,H], acts, cs, c0, reset, wh
//             -> dgx[B,T,G] (gradient of the pre-activation gates), dc0[B,H], dh0[B,H]
//   The weight gradient dW_h = sum over t of h_{t-1}^T dgx_t is one large matmul, left to XLA.
// Where reset[b, t] is set, the carry entering step t is zero (a new episode), so no
// gradient flows to the steps before it.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_kernels.h"

namespace ffi = xla::ffi;

namespace puffjax::cpu {
namespace {

constexpr int kStrip = 16;  // matmul columns per register tile (two v8)
constexpr int kTile = 6;    // rows per register tile: 12 accumulators + 2 weight vectors + 1
constexpr int kBlock = 24;  // rows per task: their state and one weight strip stay in L1

// c[MR][16] += a[MR][K] @ b[K][16]: one register tile.
template <int MR>
PUFFJAX_INLINE void Tile(const float* a, int64_t lda, const float* b, int64_t k_len, float* c,
                    int64_t ldc) {
  v8 lo[MR], hi[MR];
  for (int r = 0; r < MR; ++r) {
    lo[r] = Load(c + r * ldc);
    hi[r] = Load(c + r * ldc + 8);
  }
  for (int64_t k = 0; k < k_len; ++k) {
    const v8 b0 = Load(b + k * kStrip), b1 = Load(b + k * kStrip + 8);
    for (int r = 0; r < MR; ++r) {
      const float x = a[r * lda + k];
      lo[r] += x * b0;
      hi[r] += x * b1;
    }
  }
  for (int r = 0; r < MR; ++r) {
    Store(c + r * ldc, lo[r]);
    Store(c + r * ldc + 8, hi[r]);
  }
}

// c[m][n] += a[m][k] @ B, with B packed as [n / 16][k][16] (see Pack).
PUFFJAX_INLINE void MatMulAdd(const float* a, int64_t lda, int64_t m, const float* packed,
                         int64_t k_len, int64_t n, float* c, int64_t ldc) {
  for (int64_t s = 0; s < n / kStrip; ++s) {
    const float* b = packed + s * k_len * kStrip;
    float* cs = c + s * kStrip;
    int64_t r = 0;
    for (; r + kTile <= m; r += kTile) Tile<kTile>(a + r * lda, lda, b, k_len, cs + r * ldc, ldc);
    switch (m - r) {
      case 5: Tile<5>(a + r * lda, lda, b, k_len, cs + r * ldc, ldc); break;
      case 4: Tile<4>(a + r * lda, lda, b, k_len, cs + r * ldc, ldc); break;
      case 3: Tile<3>(a + r * lda, lda, b, k_len, cs + r * ldc, ldc); break;
      case 2: Tile<2>(a + r * lda, lda, b, k_len, cs + r * ldc, ldc); break;
      case 1: Tile<1>(a + r * lda, lda, b, k_len, cs + r * ldc, ldc); break;
      default: break;
    }
  }
}

// Packs w (element (k, j) at w[k * ks + j * js]) for MatMulAdd: out[j / 16][k][j % 16].
std::vector<float> Pack(const float* w, int64_t k_len, int64_t n, int64_t ks, int64_t js) {
  std::vector<float> out(static_cast<size_t>(k_len * n));
  for (int64_t s = 0; s < n / kStrip; ++s)
    for (int64_t k = 0; k < k_len; ++k)
      for (int64_t j = 0; j < kStrip; ++j)
        out[(s * k_len + k) * kStrip + j] = w[k * ks + (s * kStrip + j) * js];
  return out;
}

struct Dims {
  int64_t B, T, H;
};

// Rows [r0, r0 + n) through all T steps.
PUFFJAX_CLONES void ForwardBlock(Dims d, int64_t r0, int64_t n, const float* gx,
                                 const bool* reset, const float* wh_packed, const float* c0,
                                 const float* h0, float* hs, float* cs, float* acts) {
  const int64_t T = d.T, H = d.H, G = 4 * H;
  thread_local std::vector<float> scratch;  // reused by every block this thread runs
  scratch.resize(static_cast<size_t>(n * (2 * H + G)));
  float* c = scratch.data();
  float* h = c + n * H;
  float* pre = h + n * H;
  std::memcpy(c, c0 + r0 * H, sizeof(float) * n * H);
  std::memcpy(h, h0 + r0 * H, sizeof(float) * n * H);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t r = 0; r < n; ++r) {
      const int64_t at = (r0 + r) * T + t;
      if (reset[at]) {
        std::memset(c + r * H, 0, sizeof(float) * H);
        std::memset(h + r * H, 0, sizeof(float) * H);
      }
      std::memcpy(pre + r * G, gx + at * G, sizeof(float) * G);
    }
    MatMulAdd(h, H, n, wh_packed, H, G, pre, G);
    for (int64_t r = 0; r < n; ++r) {
      const int64_t at = (r0 + r) * T + t;
      const float* p = pre + r * G;
      for (int64_t j = 0; j < H; j += 8) {
        const v8 i = Sigmoid(Load(p + j)), f = Sigmoid(Load(p + H + j));
        const v8 g = Tanh(Load(p + 2 * H + j)), o = Sigmoid(Load(p + 3 * H + j));
        const v8 cn = f * Load(c + r * H + j) + i * g;
        const v8 hn = o * Tanh(cn);
        Store(c + r * H + j, cn);
        Store(h + r * H + j, hn);
        Store(cs + at * H + j, cn);
        Store(hs + at * H + j, hn);
        if (acts != nullptr) {
          float* a = acts + at * G;
          Store(a + j, i);
          Store(a + H + j, f);
          Store(a + 2 * H + j, g);
          Store(a + 3 * H + j, o);
        }
      }
    }
  }
}

// Rows [r0, r0 + n), from step T - 1 back to 0.
PUFFJAX_CLONES void BackwardBlock(Dims d, int64_t r0, int64_t n, const float* dhs,
                                  const float* dc_t, const float* dh_t, const float* acts,
                                  const float* cs, const float* c0, const bool* reset,
                                  const float* wht_packed, float* dgx, float* dc0, float* dh0) {
  const int64_t T = d.T, H = d.H, G = 4 * H;
  thread_local std::vector<float> scratch;  // reused by every block this thread runs
  scratch.resize(static_cast<size_t>(2 * n * H));
  float* dc = scratch.data();  // gradient reaching c_t from step t + 1
  float* dh = dc + n * H;      // gradient reaching h_t from step t + 1
  std::memcpy(dc, dc_t + r0 * H, sizeof(float) * n * H);
  std::memcpy(dh, dh_t + r0 * H, sizeof(float) * n * H);
  const v8 zero = {}, one = zero + 1.0f;
  for (int64_t t = T - 1; t >= 0; --t) {
    for (int64_t r = 0; r < n; ++r) {
      const int64_t row = r0 + r, at = row * T + t;
      const float* a = acts + at * G;
      float* dg = dgx + at * G;
      for (int64_t j = 0; j < H; j += 8) {
        const v8 i = Load(a + j), f = Load(a + H + j), g = Load(a + 2 * H + j),
                 o = Load(a + 3 * H + j);
        const v8 tc = Tanh(Load(cs + at * H + j));
        const v8 dhv = Load(dhs + at * H + j) + Load(dh + r * H + j);
        const v8 dcv = Load(dc + r * H + j) + dhv * o * (one - tc * tc);
        const v8 c_prev = reset[at] ? zero : t > 0 ? Load(cs + (at - 1) * H + j)
                                                    : Load(c0 + row * H + j);
        Store(dg + j, dcv * g * i * (one - i));
        Store(dg + H + j, dcv * c_prev * f * (one - f));
        Store(dg + 2 * H + j, dcv * i * (one - g * g));
        Store(dg + 3 * H + j, dhv * tc * o * (one - o));
        Store(dc + r * H + j, dcv * f);
      }
    }
    std::memset(dh, 0, sizeof(float) * n * H);
    MatMulAdd(dgx + (r0 * T + t) * G, T * G, n, wht_packed, G, H, dh, H);
    for (int64_t r = 0; r < n; ++r) {
      if (reset[(r0 + r) * T + t]) {  // the carry entering step t was zeroed
        std::memset(dc + r * H, 0, sizeof(float) * H);
        std::memset(dh + r * H, 0, sizeof(float) * H);
      }
    }
  }
  std::memcpy(dc0 + r0 * H, dc, sizeof(float) * n * H);
  std::memcpy(dh0 + r0 * H, dh, sizeof(float) * n * H);
}

#define PUFFJAX_CHECK(buf, name, ...) PUFFJAX_CHECK_SHAPE("lstm", buf, name, __VA_ARGS__)

// Reads B, T, H from gx [B, T, 4H] and checks H.
ffi::Error GateDims(ffi::Buffer<ffi::F32>& gx, Dims* d) {
  const auto dims = gx.dimensions();
  if (dims.size() != 3 || dims[2] % 64 != 0) {
    return ffi::Error::InvalidArgument(
        "puffjax lstm: gates must be [B, T, 4H] with H a multiple of 16, got " + Shape(dims));
  }
  *d = Dims{dims[0], dims[1], dims[2] / 4};
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> gx, ffi::Buffer<ffi::PRED> reset,
                   ffi::Buffer<ffi::F32> wh, ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::F32> h0,
                   ffi::ResultBuffer<ffi::F32> hs, ffi::ResultBuffer<ffi::F32> cs,
                   ffi::ResultBuffer<ffi::F32> acts) {
  Dims d;
  if (ffi::Error e = GateDims(gx, &d); e.failure()) return e;
  const int64_t B = d.B, T = d.T, H = d.H;
  PUFFJAX_CHECK(reset, "reset", B, T);
  PUFFJAX_CHECK(wh, "w_h", H, 4 * H);
  PUFFJAX_CHECK(c0, "c0", B, H);
  PUFFJAX_CHECK(h0, "h0", B, H);
  PUFFJAX_CHECK(*hs, "hs", B, T, H);
  PUFFJAX_CHECK(*cs, "cs", B, T, H);
  const bool with_acts = acts->element_count() != 0;
  if (with_acts) PUFFJAX_CHECK(*acts, "acts", B, T, 4 * H);
  if (B == 0 || T == 0) return ffi::Error::Success();
  const std::vector<float> packed = Pack(wh.typed_data(), H, 4 * H, 4 * H, 1);
  ParallelBlocks(pool, B, kBlock, [&](int64_t r0, int64_t n) {
    ForwardBlock(d, r0, n, gx.typed_data(), reset.typed_data(), packed.data(), c0.typed_data(),
                 h0.typed_data(), hs->typed_data(), cs->typed_data(),
                 with_acts ? acts->typed_data() : nullptr);
  });
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> dhs, ffi::Buffer<ffi::F32> dc_t,
                    ffi::Buffer<ffi::F32> dh_t, ffi::Buffer<ffi::F32> acts,
                    ffi::Buffer<ffi::F32> cs, ffi::Buffer<ffi::F32> c0,
                    ffi::Buffer<ffi::PRED> reset, ffi::Buffer<ffi::F32> wh,
                    ffi::ResultBuffer<ffi::F32> dgx, ffi::ResultBuffer<ffi::F32> dc0,
                    ffi::ResultBuffer<ffi::F32> dh0) {
  Dims d;
  if (ffi::Error e = GateDims(acts, &d); e.failure()) return e;
  const int64_t B = d.B, T = d.T, H = d.H;
  PUFFJAX_CHECK(dhs, "dhs", B, T, H);
  PUFFJAX_CHECK(dc_t, "dc_T", B, H);
  PUFFJAX_CHECK(dh_t, "dh_T", B, H);
  PUFFJAX_CHECK(cs, "cs", B, T, H);
  PUFFJAX_CHECK(c0, "c0", B, H);
  PUFFJAX_CHECK(reset, "reset", B, T);
  PUFFJAX_CHECK(wh, "w_h", H, 4 * H);
  PUFFJAX_CHECK(*dgx, "dgx", B, T, 4 * H);
  PUFFJAX_CHECK(*dc0, "dc0", B, H);
  PUFFJAX_CHECK(*dh0, "dh0", B, H);
  if (B == 0) return ffi::Error::Success();
  // dh_{t-1} = dgx_t @ W_h^T: pack W_h^T ([G, H], element (k, j) = wh[j, k]).
  const std::vector<float> packed = Pack(wh.typed_data(), 4 * H, H, 1, 4 * H);
  ParallelBlocks(pool, B, kBlock, [&](int64_t r0, int64_t n) {
    BackwardBlock(d, r0, n, dhs.typed_data(), dc_t.typed_data(), dh_t.typed_data(),
                  acts.typed_data(), cs.typed_data(), c0.typed_data(), reset.typed_data(),
                  packed.data(), dgx->typed_data(), dc0->typed_data(), dh0->typed_data());
  });
  return ffi::Error::Success();
}

#undef PUFFJAX_CHECK

}  // namespace
}  // namespace puffjax::cpu

XLA_FFI_DEFINE_HANDLER_SYMBOL(PuffjaxLstmForwardCpu, puffjax::cpu::Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()   // gx
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // reset
                                  .Arg<ffi::Buffer<ffi::F32>>()   // wh
                                  .Arg<ffi::Buffer<ffi::F32>>()   // c0
                                  .Arg<ffi::Buffer<ffi::F32>>()   // h0
                                  .Ret<ffi::Buffer<ffi::F32>>()   // hs
                                  .Ret<ffi::Buffer<ffi::F32>>()   // cs
                                  .Ret<ffi::Buffer<ffi::F32>>()   // acts (may be empty)
);

XLA_FFI_DEFINE_HANDLER_SYMBOL(PuffjaxLstmBackwardCpu, puffjax::cpu::Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dhs
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dc_T
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dh_T
                                  .Arg<ffi::Buffer<ffi::F32>>()   // acts
                                  .Arg<ffi::Buffer<ffi::F32>>()   // cs
                                  .Arg<ffi::Buffer<ffi::F32>>()   // c0
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // reset
                                  .Arg<ffi::Buffer<ffi::F32>>()   // wh
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dgx
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dc0
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dh0
);
