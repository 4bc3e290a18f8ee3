// nanobind module puffjax._lstm_ffi: hands the fused LSTM handlers (lstm_cpu.cc) to Python as
// capsules for jax.ffi.register_ffi_target.
#include <nanobind/nanobind.h>

#include "xla/ffi/api/c_api.h"

extern "C" XLA_FFI_Error* PuffjaxLstmForwardCpu(XLA_FFI_CallFrame* call_frame);
extern "C" XLA_FFI_Error* PuffjaxLstmBackwardCpu(XLA_FFI_CallFrame* call_frame);

NB_MODULE(_lstm_ffi, m) {
  m.doc() = "XLA FFI handlers (CPU) for puffjax.lstm: the fused LSTM recurrence";
  m.def("forward_handler", []() {
    return nanobind::capsule(reinterpret_cast<void*>(&PuffjaxLstmForwardCpu));
  }, "Capsule of the forward handler (register for platform 'cpu').");
  m.def("backward_handler", []() {
    return nanobind::capsule(reinterpret_cast<void*>(&PuffjaxLstmBackwardCpu));
  }, "Capsule of the backward handler (register for platform 'cpu').");
}
