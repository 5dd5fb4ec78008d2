#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cpu {

// Scalars of one AdamW step, in double precision; the kernels round them once to the compute type
// (float for float32/bfloat16/float16 parameters, double for float64), as torch does for Python
// scalars. bc1 = 1 - beta1^t, bc2 = 1 - beta2^t (1 - w0) are formed by the caller.
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

// Multi-tensor AdamW step, in place, over n tensors given as arrays of n data pointers (contiguous
// storage). params/grads have `param_dtype`; exp_avgs, exp_avg_sqs, max_exp_avg_sqs and corrections
// are float64 when param_dtype is float64, float32 otherwise. max_exp_avg_sqs is null unless amsgrad,
// corrections null when there is no correction. Per element (torch.optim.AdamW's order):
//   g = maximize ? -grad : grad;  p = p (1 - lr wd);  m = lerp(m, g, 1 - beta1);
//   v = beta2 v + (1 - beta2) g g;  [v_max = max(v_max, v); use v_max]
//   p = p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps);  [p = p - (lr alpha) c]
// One OpenMP region over fixed-size chunks of all tensors.
void adamw_step(int64_t n, const std::uintptr_t* params, const std::uintptr_t* grads,
                const std::uintptr_t* exp_avgs, const std::uintptr_t* exp_avg_sqs,
                const std::uintptr_t* max_exp_avg_sqs, const std::uintptr_t* corrections,
                const int64_t* numels, DType param_dtype, const AdamWScalars& s);

// The instruction set the float32 chunk loop dispatched to at run time ("avx512f", "avx2" or
// "default"), for kernels.info and the tests.
const char* adamw_step_isa();

}  // namespace pykernels::cpu
