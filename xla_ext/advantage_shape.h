// advantage_shape.h - the argument check shared by the CPU and CUDA handlers.
#ifndef PUFFJAX_ADVANTAGE_SHAPE_H
#define PUFFJAX_ADVANTAGE_SHAPE_H

#include <cstdint>

#include "xla/ffi/api/ffi.h"

namespace puffjax {

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
