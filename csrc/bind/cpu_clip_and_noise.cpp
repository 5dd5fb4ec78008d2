// kernels._C.clip_and_noise_{sumsq,apply,rows_sumsq,sum_apply}, clip_and_noise_normals, philox4x32_10
#include "bind/bind.h"
#include "cpu/clip_and_noise.h"

namespace pykernels::bind {

namespace {

std::vector<const void*> const_ptrs(const std::vector<std::uintptr_t>& p) {
  std::vector<const void*> out(p.size());
  for (size_t i = 0; i < p.size(); ++i) out[i] = ptr<const void>(p[i]);
  return out;
}

void check_lengths(const std::vector<std::uintptr_t>& ptrs, const std::vector<int64_t>& numels) {
  if (ptrs.size() != numels.size()) {
    throw std::invalid_argument("clip_and_noise: " + std::to_string(ptrs.size()) + " pointers but " +
                                std::to_string(numels.size()) + " sizes");
  }
}

}  // namespace

void bind_clip_and_noise(py::module_& m) {
  m.def(
      "clip_and_noise_sumsq",
      [](const std::vector<std::uintptr_t>& ptrs, const std::vector<int64_t>& numels, int dtype) {
        check_lengths(ptrs, numels);
        const DType dt = dtype_from_code(dtype);
        const auto p = const_ptrs(ptrs);
        py::gil_scoped_release release;
        return cpu::clip_and_noise_sumsq(p.data(), numels.data(), static_cast<int64_t>(p.size()), dt);
      },
      py::arg("ptrs"), py::arg("numels"), py::arg("dtype"));

  m.def(
      "clip_and_noise_apply",
      [](const std::vector<std::uintptr_t>& in, const std::vector<std::uintptr_t>& out,
         const std::vector<int64_t>& numels, int dtype, double norm, double max_norm, double noise_std,
         uint64_t seed, uint64_t offset) {
        check_lengths(in, numels);
        check_lengths(out, numels);
        const DType dt = dtype_from_code(dtype);
        const auto pin = const_ptrs(in);
        std::vector<void*> pout(out.size());
        for (size_t i = 0; i < out.size(); ++i) pout[i] = ptr<void>(out[i]);
        py::gil_scoped_release release;
        cpu::clip_and_noise_apply(pin.data(), pout.data(), numels.data(), static_cast<int64_t>(pin.size()), dt,
                                  norm, max_norm, noise_std, seed, offset);
      },
      py::arg("inputs"), py::arg("outputs"), py::arg("numels"), py::arg("dtype"), py::arg("norm"),
      py::arg("max_norm"), py::arg("noise_std"), py::arg("seed"), py::arg("offset"));

  m.def(
      "clip_and_noise_rows_sumsq",
      [](std::uintptr_t x, int64_t rows, int64_t cols, int dtype, std::uintptr_t norms_sq) {
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cpu::clip_and_noise_rows_sumsq(ptr<const void>(x), rows, cols, dt, ptr<double>(norms_sq));
      },
      py::arg("x"), py::arg("rows"), py::arg("cols"), py::arg("dtype"), py::arg("norms_sq"));

  m.def(
      "clip_and_noise_sum_apply",
      [](std::uintptr_t x, std::uintptr_t out, int64_t rows, int64_t cols, int dtype, std::uintptr_t norms,
         double max_norm, double noise_std, uint64_t seed, uint64_t offset) {
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cpu::clip_and_noise_sum_apply(ptr<const void>(x), ptr<void>(out), rows, cols, dt, ptr<const double>(norms),
                                      max_norm, noise_std, seed, offset);
      },
      py::arg("x"), py::arg("out"), py::arg("rows"), py::arg("cols"), py::arg("dtype"), py::arg("norms"),
      py::arg("max_norm"), py::arg("noise_std"), py::arg("seed"), py::arg("offset"));

  m.def(
      "clip_and_noise_normals",
      [](std::uintptr_t out, uint64_t start, int64_t n, uint64_t seed, uint64_t offset) {
        py::gil_scoped_release release;
        cpu::normals(ptr<float>(out), start, n, seed, offset);
      },
      py::arg("out"), py::arg("start"), py::arg("n"), py::arg("seed"), py::arg("offset"));

  m.def(
      "philox4x32_10",
      [](const std::vector<uint32_t>& counter, const std::vector<uint32_t>& key) {
        if (counter.size() != 4 || key.size() != 2) {
          throw std::invalid_argument("philox4x32_10 takes 4 counter words and 2 key words");
        }
        std::vector<uint32_t> out(4);
        cpu::philox4x32_10(counter.data(), key.data(), out.data());
        return out;
      },
      py::arg("counter"), py::arg("key"));
}

}  // namespace pykernels::bind
