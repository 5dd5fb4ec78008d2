// kernels._C.newton_schulz
#include "bind/bind.h"
#include "cpu/newton_schulz.h"

namespace pykernels::bind {

void bind_newton_schulz(py::module_& m) {
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

}  // namespace pykernels::bind
