// Host-only nanobind module puffjax._ffi: every XLA FFI handler of puffjax, handed to Python
// as capsules for jax.ffi.register_ffi_target (the shape of JAX's own examples/ffi).
// puffjax/kernels.py registers them, once, when it is imported.
//
// The CUDA handler lives in a static library compiled by nvcc (advantage_cuda.cu), so
// nanobind never goes through nvcc; this file only sees its extern "C" symbol.
#include <type_traits>

#include <nanobind/nanobind.h>

#include "xla/ffi/api/c_api.h"

#ifdef PUFFJAX_WITH_CUDA
#include "advantage_cuda.h"
#endif

// The CPU handlers (advantage_cpu.cc, lstm_cpu.cc, mingru_cpu.cc).
extern "C" XLA_FFI_Error* PuffjaxPuffAdvantageCpu(XLA_FFI_CallFrame* call_frame);
extern "C" XLA_FFI_Error* PuffjaxLstmForwardCpu(XLA_FFI_CallFrame* call_frame);
extern "C" XLA_FFI_Error* PuffjaxLstmBackwardCpu(XLA_FFI_CallFrame* call_frame);
extern "C" XLA_FFI_Error* PuffjaxMinGruForwardCpu(XLA_FFI_CallFrame* call_frame);
extern "C" XLA_FFI_Error* PuffjaxMinGruBackwardCpu(XLA_FFI_CallFrame* call_frame);

namespace nb = nanobind;

namespace {

template <typename Fn>
nb::capsule EncapsulateHandler(Fn* fn) {
  static_assert(std::is_invocable_r_v<XLA_FFI_Error*, Fn, XLA_FFI_CallFrame*>,
                "not an XLA FFI handler");
  return nb::capsule(reinterpret_cast<void*>(fn));
}

}  // namespace

NB_MODULE(_ffi, m) {
  m.doc() = "XLA FFI handlers of puffjax (the puff advantage, the fused LSTM and minGRU recurrences)";
  m.def(
      "registrations",
      []() {
        nb::dict cpu;
        cpu["puffjax_puff_advantage"] = EncapsulateHandler(&PuffjaxPuffAdvantageCpu);
        cpu["puffjax_lstm_forward"] = EncapsulateHandler(&PuffjaxLstmForwardCpu);
        cpu["puffjax_lstm_backward"] = EncapsulateHandler(&PuffjaxLstmBackwardCpu);
        cpu["puffjax_mingru_forward"] = EncapsulateHandler(&PuffjaxMinGruForwardCpu);
        cpu["puffjax_mingru_backward"] = EncapsulateHandler(&PuffjaxMinGruBackwardCpu);
        nb::dict registrations;
        registrations["cpu"] = cpu;
#ifdef PUFFJAX_WITH_CUDA
        nb::dict cuda;
        cuda["puffjax_puff_advantage"] = EncapsulateHandler(&PuffjaxPuffAdvantageCuda);
        registrations["CUDA"] = cuda;
#endif
        return registrations;
      },
      "{platform: {target name: handler capsule}}, platform spelt as "
      "jax.ffi.register_ffi_target takes it ('cpu', 'CUDA'). 'CUDA' is present only when the "
      "extension was built with nvcc.");
  // FFI API version of the headers the handlers were compiled against. A runtime (jaxlib)
  // older than this rejects the handlers.
  m.attr("ffi_api_version") = nb::make_tuple(XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR);
}
