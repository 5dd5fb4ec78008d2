// Shared by the binding files: csrc/bind/cpu_<op>.cpp go into kernels._C, csrc/bind/cuda_<op>.cpp
// into kernels._cuda. Each defines bind_<op>(m) for its own op, so one op's bindings live in one
// file and bind_cpu.cpp / bind_cuda.cpp only list them. Tensors cross as integer data pointers.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace pykernels::bind {

namespace py = pybind11;

template <typename T>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

// One per op; the module (kernels._C or kernels._cuda) that links this file calls them all.
void bind_newton_schulz(py::module_& m);
void bind_adamw_step(py::module_& m);
void bind_aggregate(py::module_& m);
void bind_clip_and_noise(py::module_& m);
void bind_hash_grid_encode(py::module_& m);
void bind_nufft(py::module_& m);
void bind_rotate_filter_bank(py::module_& m);

}  // namespace pykernels::bind
