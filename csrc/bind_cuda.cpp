// kernels._cuda: CUDA kernels. Tensors arrive as integer device pointers, the CUDA stream as an
// integer (torch.cuda.current_stream().cuda_stream); nothing here includes torch.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "cuda/newton_schulz.h"

namespace py = pybind11;
using namespace pykernels;

namespace {

template <typename T>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

py::dict build_info() {
  py::dict d;
  d["cuda_runtime_compiled"] = CUDART_VERSION;
  d["architectures"] = std::string(PYKERNELS_CUDA_ARCHS);
  int driver = 0;
  d["driver"] = cudaDriverGetVersion(&driver) == cudaSuccess ? driver : 0;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    count = 0;
  }
  d["device_count"] = count;
  return d;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "pykernels CUDA kernels (torch-free; called through kernels.ops)";
  m.def("info", &build_info, "Build configuration of the CUDA module and the devices it sees");

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
