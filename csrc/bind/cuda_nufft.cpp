// kernels._cuda.nufft_spread / nufft_interp (see csrc/cuda/nufft.h).
#include "bind/bind.h"
#include "cuda/nufft.h"

namespace pykernels::bind {

namespace {

std::vector<int64_t> check_fine(const std::vector<int64_t>& nf) {
  if (nf.size() != 2 && nf.size() != 3) {
    throw std::invalid_argument("nf must list 2 or 3 fine-grid sizes, got " + std::to_string(nf.size()));
  }
  return nf;
}

}  // namespace

void bind_nufft(py::module_& m) {
  m.def(
      "nufft_spread",
      [](const std::vector<int64_t>& nf, std::uintptr_t t, int64_t ntraj, int64_t ncoil, int64_t m,
         int w, double beta, std::uintptr_t samples, std::uintptr_t grid, int dtype, std::uintptr_t stream) {
        const auto fine = check_fine(nf);
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cuda::nufft_spread(static_cast<int>(fine.size()), fine.data(), ptr<const double>(t), ntraj, ncoil, m,
                           w, beta, ptr<const void>(samples), ptr<void>(grid), dt,
                           reinterpret_cast<void*>(stream));
      },
      py::arg("nf"), py::arg("t"), py::arg("ntraj"), py::arg("ncoil"), py::arg("m"), py::arg("w"),
      py::arg("beta"), py::arg("samples"), py::arg("grid"), py::arg("dtype"), py::arg("stream"));
  m.def(
      "nufft_interp",
      [](const std::vector<int64_t>& nf, std::uintptr_t t, int64_t ntraj, int64_t ncoil, int64_t m,
         int w, double beta, std::uintptr_t grid, std::uintptr_t samples, int dtype, std::uintptr_t stream) {
        const auto fine = check_fine(nf);
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cuda::nufft_interp(static_cast<int>(fine.size()), fine.data(), ptr<const double>(t), ntraj, ncoil, m,
                           w, beta, ptr<const void>(grid), ptr<void>(samples), dt,
                           reinterpret_cast<void*>(stream));
      },
      py::arg("nf"), py::arg("t"), py::arg("ntraj"), py::arg("ncoil"), py::arg("m"), py::arg("w"),
      py::arg("beta"), py::arg("grid"), py::arg("samples"), py::arg("dtype"), py::arg("stream"));
}

}  // namespace pykernels::bind
