// kernels._cuda.adamw_step, kernels._cuda.adamw_step_chunk
#include "bind/bind.h"
#include "cuda/adamw_step.h"

namespace pykernels::bind {

void bind_adamw_step(py::module_& m) {
  m.attr("adamw_step_chunk") = cuda::kAdamWChunk;

  m.def(
      "adamw_step",
      [](std::uintptr_t pointers, std::uintptr_t chunks, std::uintptr_t numels, int64_t n, int64_t n_chunks,
         bool amsgrad, bool has_correction, int dtype, double lr, double beta1, double beta2, double eps,
         double weight_decay, double bc1, double bc2, double alpha, bool maximize, std::uintptr_t stream) {
        const DType dt = dtype_from_code(dtype);
        cuda::AdamWScalars s;
        s.lr = lr;
        s.beta1 = beta1;
        s.beta2 = beta2;
        s.eps = eps;
        s.weight_decay = weight_decay;
        s.bc1 = bc1;
        s.bc2 = bc2;
        s.alpha = alpha;
        s.maximize = maximize;
        py::gil_scoped_release release;
        cuda::adamw_step(ptr<const int64_t>(pointers), ptr<const int64_t>(chunks), ptr<const int64_t>(numels), n,
                         n_chunks, amsgrad, has_correction, dt, s, reinterpret_cast<void*>(stream));
      },
      py::arg("pointers"), py::arg("chunks"), py::arg("numels"), py::arg("n"), py::arg("n_chunks"),
      py::arg("amsgrad"), py::arg("has_correction"), py::arg("dtype"), py::arg("lr"), py::arg("beta1"),
      py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("bc1"), py::arg("bc2"), py::arg("alpha"),
      py::arg("maximize"), py::arg("stream"));
}

}  // namespace pykernels::bind
