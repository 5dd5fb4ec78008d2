// The (d, f, table dtype) dispatch shared by the CPU and CUDA hash-grid kernels. Calls
//   fn(std::integral_constant<int, D>{}, std::integral_constant<int, F>{}, Storage{})
// for D = d in 1..4, F = f in {1, 2, 4, 8} and Storage float / double / F16 (the backend's 16-bit
// storage type: uint16_t on the CPU, __half on CUDA); other values throw std::invalid_argument.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/dtype.h"

namespace pykernels {

template <typename F16, typename Fn>
decltype(auto) dispatch_hash_grid(int d, int f, DType dtype, Fn&& fn) {
  auto by_type = [&](auto dd, auto ff) {
    switch (dtype) {
      case DType::Float32: return fn(dd, ff, float{});
      case DType::Float64: return fn(dd, ff, double{});
      case DType::Float16: return fn(dd, ff, F16{});
      default:
        throw std::invalid_argument(std::string("hash_grid_encode: table dtype must be float32, float64 or "
                                                "float16, got ") + dtype_name(dtype));
    }
  };
  auto by_f = [&](auto dd) {
    switch (f) {
      case 1: return by_type(dd, std::integral_constant<int, 1>{});
      case 2: return by_type(dd, std::integral_constant<int, 2>{});
      case 4: return by_type(dd, std::integral_constant<int, 4>{});
      case 8: return by_type(dd, std::integral_constant<int, 8>{});
      default: throw std::invalid_argument("hash_grid_encode: f must be 1, 2, 4 or 8, got " + std::to_string(f));
    }
  };
  switch (d) {
    case 1: return by_f(std::integral_constant<int, 1>{});
    case 2: return by_f(std::integral_constant<int, 2>{});
    case 3: return by_f(std::integral_constant<int, 3>{});
    case 4: return by_f(std::integral_constant<int, 4>{});
    default: throw std::invalid_argument("hash_grid_encode: d must be 1..4, got " + std::to_string(d));
  }
}

}  // namespace pykernels
