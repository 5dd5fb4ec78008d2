#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cuda {

// Bytes of device scratch that newton_schulz needs for this problem (the caller allocates it).
size_t newton_schulz_workspace_bytes(int64_t batch, int64_t m, int64_t n, DType dtype);

// Device pointers; x, out: contiguous (batch, m, n), m <= n; workspace: at least
// newton_schulz_workspace_bytes(...) bytes, 256-byte aligned. Launches on `stream` and returns
// without synchronizing; throws std::runtime_error if a launch fails. Same math as the CPU header.
void newton_schulz(const void* x, void* out, void* workspace, int64_t batch, int64_t m, int64_t n,
                   DType dtype, const double* coeffs, int64_t steps, double eps, void* stream);

}  // namespace pykernels::cuda
