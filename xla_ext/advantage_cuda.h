// XLA FFI handler symbols for the CUDA puff advantage (advantage_cuda.cu).
// Included by host-only code; no CUDA headers needed here.
#ifndef PUFFJAX_ADVANTAGE_CUDA_H_
#define PUFFJAX_ADVANTAGE_CUDA_H_

#include "xla/ffi/api/c_api.h"

extern "C" XLA_FFI_Error* PuffjaxPuffAdvantageCuda(XLA_FFI_CallFrame* call_frame);

#endif  // PUFFJAX_ADVANTAGE_CUDA_H_
