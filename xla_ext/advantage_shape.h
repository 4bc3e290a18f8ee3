// advantage_shape.h - the signature and the argument check shared by the CPU and CUDA
// handlers of the puff advantage.
#ifndef PUFFJAX_ADVANTAGE_SHAPE_H
#define PUFFJAX_ADVANTAGE_SHAPE_H

#include <cstdint>
#include <utility>

#include "xla/ffi/api/ffi.h"

namespace puffjax {

// The handlers' buffers, attributes and result, bound after `binding` (ffi::Ffi::Bind(), with
// the CUDA stream as context on GPU): four inputs of the same shape, the four scalars of the
// recurrence, the advantages.
template <typename Binding>
auto AdvantageBinding(Binding binding) {
  using Buffer = xla::ffi::Buffer<xla::ffi::F32>;
  return std::move(binding)
      .template Arg<Buffer>()  // values
      .template Arg<Buffer>()  // rewards
      .template Arg<Buffer>()  // terminals
      .template Arg<Buffer>()  // ratio
      .template Attr<float>("gamma")
      .template Attr<float>("gae_lambda")
      .template Attr<float>("rho_clip")
      .template Attr<float>("c_clip")
      .template Ret<Buffer>();  // advantages
}

// All inputs and the output hold the same number of elements; leading dimensions are rows
// (vmap's broadcast_all adds some), the last is the horizon. Fills rows and horizon.
inline xla::ffi::Error AdvantageShape(xla::ffi::Buffer<xla::ffi::F32>& values,
                                      xla::ffi::Buffer<xla::ffi::F32>& rewards,
                                      xla::ffi::Buffer<xla::ffi::F32>& terminals,
                                      xla::ffi::Buffer<xla::ffi::F32>& ratio,
                                      xla::ffi::ResultBuffer<xla::ffi::F32>& advantages,
                                      int64_t* rows, int64_t* horizon) {
  const auto dims = values.dimensions();
  if (dims.size() < 1) {
    return xla::ffi::Error::InvalidArgument("puff_advantage: inputs must have rank >= 1");
  }
  const size_t n = values.element_count();
  if (rewards.element_count() != n || terminals.element_count() != n ||
      ratio.element_count() != n || advantages->element_count() != n) {
    return xla::ffi::Error::InvalidArgument(
        "puff_advantage: all inputs and the output must have the same shape");
  }
  *horizon = dims.back();
  *rows = *horizon > 0 ? static_cast<int64_t>(n) / *horizon : 0;
  return xla::ffi::Error::Success();
}

}  // namespace puffjax

#endif
