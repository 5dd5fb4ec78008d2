// kernels._cuda.clip_and_noise_{partials,sumsq,apply,sum_apply}
#include "bind/bind.h"
#include "cuda/clip_and_noise.h"

namespace pykernels::bind {

void bind_clip_and_noise(py::module_& m) {
  m.def("clip_and_noise_partials", &cuda::clip_and_noise_partials);

  m.def(
      "clip_and_noise_sumsq",
      [](std::uintptr_t ptrs, std::uintptr_t numels, int64_t n, int64_t total, int dtype, std::uintptr_t scratch,
         std::uintptr_t out, std::uintptr_t stream) {
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cuda::clip_and_noise_sumsq(ptr<const int64_t>(ptrs), ptr<const int64_t>(numels), n, total, dt,
                                   ptr<double>(scratch), ptr<double>(out), reinterpret_cast<void*>(stream));
      },
      py::arg("ptrs"), py::arg("numels"), py::arg("n"), py::arg("total"), py::arg("dtype"), py::arg("scratch"),
      py::arg("out"), py::arg("stream"));

  m.def(
      "clip_and_noise_apply",
      [](std::uintptr_t ptrs, std::uintptr_t numels, int64_t n, int64_t total, int dtype, std::uintptr_t norm,
         double max_norm, double noise_std, uint64_t seed, uint64_t offset, std::uintptr_t stream) {
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cuda::clip_and_noise_apply(ptr<const int64_t>(ptrs), ptr<const int64_t>(numels), n, total, dt,
                                   ptr<const double>(norm), max_norm, noise_std, seed, offset,
                                   reinterpret_cast<void*>(stream));
      },
      py::arg("ptrs"), py::arg("numels"), py::arg("n"), py::arg("total"), py::arg("dtype"), py::arg("norm"),
      py::arg("max_norm"), py::arg("noise_std"), py::arg("seed"), py::arg("offset"), py::arg("stream"));

  m.def(
      "clip_and_noise_sum_apply",
      [](std::uintptr_t x, std::uintptr_t out, int64_t rows, int64_t cols, int dtype, std::uintptr_t norms,
         double max_norm, double noise_std, uint64_t seed, uint64_t offset, std::uintptr_t stream) {
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cuda::clip_and_noise_sum_apply(ptr<const void>(x), ptr<void>(out), rows, cols, dt, ptr<const double>(norms),
                                       max_norm, noise_std, seed, offset, reinterpret_cast<void*>(stream));
      },
      py::arg("x"), py::arg("out"), py::arg("rows"), py::arg("cols"), py::arg("dtype"), py::arg("norms"),
      py::arg("max_norm"), py::arg("noise_std"), py::arg("seed"), py::arg("offset"), py::arg("stream"));
}

}  // namespace pykernels::bind
