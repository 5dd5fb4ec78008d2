// kernels._C.hash_grid_encode_forward, kernels._C.hash_grid_encode_backward
#include "bind/bind.h"
#include "cpu/hash_grid_encode.h"

namespace pykernels::bind {

namespace {
void check_levels(const std::vector<int64_t>& resolutions, int64_t levels) {
  if (static_cast<int64_t>(resolutions.size()) != levels) {
    throw std::invalid_argument("resolutions must hold one value per level (" + std::to_string(levels) +
                                "), got " + std::to_string(resolutions.size()));
  }
}
}  // namespace

void bind_hash_grid_encode(py::module_& m) {
  m.def(
      "hash_grid_encode_forward",
      [](std::uintptr_t x, std::uintptr_t table, std::uintptr_t out, int64_t n, int d, int64_t levels,
         int64_t T, int f, const std::vector<int64_t>& resolutions, int dtype) {
        check_levels(resolutions, levels);
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cpu::hash_grid_encode_forward(ptr<const void>(x), ptr<const void>(table), ptr<void>(out), n, d, levels,
                                      T, f, resolutions.data(), dt);
      },
      py::arg("x"), py::arg("table"), py::arg("out"), py::arg("n"), py::arg("d"), py::arg("levels"),
      py::arg("T"), py::arg("f"), py::arg("resolutions"), py::arg("dtype"));
  m.def(
      "hash_grid_encode_backward",
      [](std::uintptr_t grad_out, std::uintptr_t x, std::uintptr_t table, std::uintptr_t grad_table,
         std::uintptr_t grad_x, int64_t n, int d, int64_t levels, int64_t T, int f,
         const std::vector<int64_t>& resolutions, int dtype) {
        check_levels(resolutions, levels);
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cpu::hash_grid_encode_backward(ptr<const void>(grad_out), ptr<const void>(x), ptr<const void>(table),
                                       ptr<void>(grad_table), ptr<void>(grad_x), n, d, levels, T, f,
                                       resolutions.data(), dt);
      },
      py::arg("grad_out"), py::arg("x"), py::arg("table"), py::arg("grad_table"), py::arg("grad_x"),
      py::arg("n"), py::arg("d"), py::arg("levels"), py::arg("T"), py::arg("f"), py::arg("resolutions"),
      py::arg("dtype"));
}

}  // namespace pykernels::bind
