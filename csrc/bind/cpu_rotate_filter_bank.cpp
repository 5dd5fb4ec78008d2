// kernels._C.rotate_filter_bank_forward, kernels._C.rotate_filter_bank_backward
#include "bind/bind.h"
#include "cpu/rotate_filter_bank.h"

namespace pykernels::bind {

void bind_rotate_filter_bank(py::module_& m) {
  m.def(
      "rotate_filter_bank_forward",
      [](std::uintptr_t coeffs, std::uintptr_t basis, std::uintptr_t W, int64_t c_out, int64_t c_in, int64_t n_in,
         int64_t n, int64_t nb, int64_t kk, int dtype) {
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cpu::rotate_filter_bank_forward(ptr<const void>(coeffs), ptr<const void>(basis), ptr<void>(W), c_out, c_in,
                                        n_in, n, nb, kk, dt);
      },
      py::arg("coeffs"), py::arg("basis"), py::arg("W"), py::arg("c_out"), py::arg("c_in"), py::arg("n_in"),
      py::arg("n"), py::arg("nb"), py::arg("kk"), py::arg("dtype"));

  m.def(
      "rotate_filter_bank_backward",
      [](std::uintptr_t grad_W, std::uintptr_t basis, std::uintptr_t grad, int64_t c_out, int64_t c_in,
         int64_t n_in, int64_t n, int64_t nb, int64_t kk, int dtype) {
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cpu::rotate_filter_bank_backward(ptr<const void>(grad_W), ptr<const void>(basis), ptr<void>(grad), c_out,
                                         c_in, n_in, n, nb, kk, dt);
      },
      py::arg("grad_W"), py::arg("basis"), py::arg("grad"), py::arg("c_out"), py::arg("c_in"), py::arg("n_in"),
      py::arg("n"), py::arg("nb"), py::arg("kk"), py::arg("dtype"));
}

}  // namespace pykernels::bind
