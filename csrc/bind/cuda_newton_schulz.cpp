// kernels._cuda.newton_schulz_workspace_bytes, kernels._cuda.newton_schulz
#include "bind/bind.h"
#include "cuda/newton_schulz.h"

namespace pykernels::bind {

void bind_newton_schulz(py::module_& m) {
  m.def(
      "newton_schulz_workspace_bytes",
      [](int64_t batch, int64_t rows, int64_t cols, int dtype) {
        return cuda::newton_schulz_workspace_bytes(batch, rows, cols, dtype_from_code(dtype));
      },
      py::arg("batch"), py::arg("m"), py::arg("n"), py::arg("dtype"));

  m.def(
      "newton_schulz",
      [](std::uintptr_t x, std::uintptr_t out, std::uintptr_t workspace, int64_t batch, int64_t rows,
         int64_t cols, int dtype, const std::vector<double>& coeffs, double eps, std::uintptr_t stream) {
        if (coeffs.empty() || coeffs.size() % 3 != 0) {
          throw std::invalid_argument("coeffs must hold 3 * steps values, got " +
                                      std::to_string(coeffs.size()));
        }
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cuda::newton_schulz(ptr<const void>(x), ptr<void>(out), ptr<void>(workspace), batch, rows, cols, dt,
                            coeffs.data(), static_cast<int64_t>(coeffs.size() / 3), eps,
                            reinterpret_cast<void*>(stream));
      },
      py::arg("x"), py::arg("out"), py::arg("workspace"), py::arg("batch"), py::arg("m"), py::arg("n"),
      py::arg("dtype"), py::arg("coeffs"), py::arg("eps"), py::arg("stream"));
}

}  // namespace pykernels::bind
