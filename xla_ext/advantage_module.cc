// Host-only nanobind module puffjax._advantage_ffi: hands the XLA FFI handlers
// of the puff advantage to Python as capsules for jax.ffi.register_ffi_target.
// The CUDA handler lives in a separate static library compiled by nvcc, so
// nanobind never goes through nvcc.
#include <nanobind/nanobind.h>

#include "xla/ffi/api/c_api.h"

#ifdef PUFFJAX_WITH_CUDA
#include "advantage_cuda.h"
#endif

extern "C" XLA_FFI_Error* PuffjaxPuffAdvantageCpu(XLA_FFI_CallFrame* call_frame);

namespace nb = nanobind;

namespace {

template <typename Fn>
nb::capsule HandlerCapsule(Fn* fn) {
  static_assert(std::is_invocable_r_v<XLA_FFI_Error*, Fn, XLA_FFI_CallFrame*>,
                "not an XLA FFI handler");
  return nb::capsule(reinterpret_cast<void*>(fn));
}

}  // namespace

NB_MODULE(_advantage_ffi, m) {
  m.doc() = "XLA FFI handlers for puffjax.advantage.puff_advantage";
  m.def("cpu_handler", []() { return HandlerCapsule(&PuffjaxPuffAdvantageCpu); },
        "Capsule of the CPU XLA FFI handler (register for platform 'cpu').");
#ifdef PUFFJAX_WITH_CUDA
  m.attr("has_cuda") = true;
  m.def("cuda_handler", []() { return HandlerCapsule(&PuffjaxPuffAdvantageCuda); },
        "Capsule of the CUDA XLA FFI handler (register for platform 'CUDA').");
#else
  m.attr("has_cuda") = false;
#endif
  // FFI API version of the headers the handlers were compiled against. A
  // runtime (jaxlib) older than this rejects the handlers.
  m.attr("ffi_api_version") = nb::make_tuple(XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR);
}
