// kernels._C: CPU kernels. Tensors arrive as integer data pointers plus sizes and a dtype code;
// the Python op layer (kernels/ops/) owns allocation, validation and contiguity.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <vector>

#include "common/dtype.h"
#include "cpu/newton_schulz.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;
using namespace pykernels;

namespace {

template <typename T>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

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

  m.def(
      "newton_schulz",
      [](std::uintptr_t x, std::uintptr_t out, int64_t batch, int64_t rows, int64_t cols, int dtype,
         const std::vector<double>& coeffs, double eps) {
        if (coeffs.empty() || coeffs.size() % 3 != 0) {
          throw std::invalid_argument("coeffs must hold 3 * steps values, got " +
                                      std::to_string(coeffs.size()));
        }
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cpu::newton_schulz(ptr<const void>(x), ptr<void>(out), batch, rows, cols, dt, coeffs.data(),
                           static_cast<int64_t>(coeffs.size() / 3), eps);
      },
      py::arg("x"), py::arg("out"), py::arg("batch"), py::arg("m"), py::arg("n"), py::arg("dtype"),
      py::arg("coeffs"), py::arg("eps"));
}
