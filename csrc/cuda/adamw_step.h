#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cuda {

// Scalars of one AdamW step in double precision (see csrc/cpu/adamw_step.h for the math); the kernel
// rounds them once to the compute type (float, or double for float64 parameters).
struct AdamWScalars {
  double lr = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double bc1 = 1.0;
  double bc2 = 1.0;
  double alpha = 0.0;
  bool maximize = false;
};

// Elements per chunk of the chunk table (the Python layer builds the table with this size).
constexpr int64_t kAdamWChunk = 16384;

// One launch for a whole list of n tensors. Device pointers to small int64 tables
// (kernels/_multi_tensor.py): `pointers` (6, n) — rows params, grads, exp_avgs, exp_avg_sqs,
// max_exp_avg_sqs (zeros unless amsgrad), corrections (zeros when absent); `chunks` (2, n_chunks) —
// tensor index and first element of each kAdamWChunk-element chunk; `numels` (n,). State is float32
// (float64 for float64 parameters). Launches on `stream` without synchronizing; throws
// std::runtime_error when the launch fails.
void adamw_step(const int64_t* pointers, const int64_t* chunks, const int64_t* numels, int64_t n,
                int64_t n_chunks, bool amsgrad, bool has_correction, DType param_dtype, const AdamWScalars& s,
                void* stream);

}  // namespace pykernels::cuda
