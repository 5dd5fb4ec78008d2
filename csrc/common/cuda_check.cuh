// Launch-error check shared by the CUDA kernels: kernels launch on the caller's stream and never
// synchronize, so the only error visible at launch time is the launch's own (bad configuration, no
// kernel image for this GPU); it becomes a std::runtime_error naming the op and the kernel.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace pykernels::cuda {

inline void check_launch(const char* op, const std::string& what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string(op) + ": launch of " + what + " failed: " + cudaGetErrorString(err));
  }
}

}  // namespace pykernels::cuda
