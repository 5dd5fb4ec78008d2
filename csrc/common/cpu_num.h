// Number traits shared by the CPU kernels: each storage type T is read into its accumulation type
// Num<T>::Acc (float for float / half / bfloat16, double for double) and rounded back once on store
// (round to nearest even). The CUDA kernels' counterpart is common/cuda_num.cuh.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cpu {

// 16-bit storage: one uint16_t each, so arrays of them alias the tensors' raw bits.
struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};
static_assert(sizeof(Half) == 2 && sizeof(BFloat16) == 2, "16-bit storage must stay 2 bytes");

template <typename T>
struct Num;

template <>
struct Num<float> {
  using Acc = float;
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};

template <>
struct Num<double> {
  using Acc = double;
  static double load(double v) { return v; }
  static double store(double v) { return v; }
};

template <>
struct Num<Half> {
  using Acc = float;
  static float load(Half v) { return fp16_to_float(v.bits); }
  static Half store(float v) { return Half{float_to_fp16(v)}; }
};

template <>
struct Num<BFloat16> {
  using Acc = float;
  static float load(BFloat16 v) { return bf16_to_float(v.bits); }
  static BFloat16 store(float v) { return BFloat16{float_to_bf16(v)}; }
};

}  // namespace pykernels::cpu
