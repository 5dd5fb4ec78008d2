// kernels._C: CPU kernels. Tensors arrive as integer data pointers plus sizes and a dtype code;
// the Python op layer (kernels/ops/) owns allocation, validation and contiguity.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <vector>

#include "common/dtype.h"
#include "bind/bind.h"
#include "cpu/adamw_step.h"
#include "cpu/newton_schulz.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;
using namespace pykernels;

namespace {

py::dict build_info() {
  py::dict d;
#ifdef _OPENMP
  d["openmp"] = true;
  d["max_threads"] = omp_get_max_threads();
#else
  d["openmp"] = false;
  d["max_threads"] = 1;
#endif
#ifdef PYKERNELS_NATIVE
  d["native"] = true;
#else
  d["native"] = false;
#endif
  d["newton_schulz_isa"] = cpu::newton_schulz_isa();
  d["adamw_step_isa"] = cpu::adamw_step_isa();
#if defined(__clang__)
  d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  d["compiler"] = std::string("gcc ") + __VERSION__;
#else
  d["compiler"] = "unknown";
#endif
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "pykernels CPU kernels (torch-free; called through kernels.ops)";
  m.def("info", &build_info, "Build configuration of the CPU module");

  bind::bind_newton_schulz(m);
  bind::bind_adamw_step(m);
  bind::bind_aggregate(m);
  bind::bind_clip_and_noise(m);
  bind::bind_hash_grid_encode(m);
  bind::bind_nufft(m);
  bind::bind_rotate_filter_bank(m);
}
