// kernels._cuda: CUDA kernels. Tensors arrive as integer device pointers, the CUDA stream as an
// integer (torch.cuda.current_stream().cuda_stream); nothing here includes torch.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "bind/bind.h"

namespace py = pybind11;
using namespace pykernels;

namespace {

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

  bind::bind_newton_schulz(m);
  bind::bind_adamw_step(m);
  bind::bind_aggregate(m);
  bind::bind_clip_and_noise(m);
  bind::bind_hash_grid_encode(m);
  bind::bind_nufft(m);
  bind::bind_rotate_filter_bank(m);
}
