// kernels._C.adamw_step, kernels._C.adamw_step_isa
#include "bind/bind.h"
#include "cpu/adamw_step.h"

namespace pykernels::bind {

void bind_adamw_step(py::module_& m) {
  m.def(
      "adamw_step",
      [](const std::vector<std::uintptr_t>& params, const std::vector<std::uintptr_t>& grads,
         const std::vector<std::uintptr_t>& exp_avgs, const std::vector<std::uintptr_t>& exp_avg_sqs,
         const std::vector<std::uintptr_t>& max_exp_avg_sqs, const std::vector<std::uintptr_t>& corrections,
         const std::vector<int64_t>& numels, int dtype, double lr, double beta1, double beta2, double eps,
         double weight_decay, double bc1, double bc2, double alpha, bool maximize) {
        const size_t n = params.size();
        auto check = [n](const char* name, size_t size, bool optional) {
          if (size != n && !(optional && size == 0)) {
            throw std::invalid_argument(std::string("adamw_step: ") + name + " has " + std::to_string(size) +
                                        " pointers, params has " + std::to_string(n) +
                                        (optional ? " (give n, or none)" : ""));
          }
        };
        check("grads", grads.size(), false);
        check("exp_avgs", exp_avgs.size(), false);
        check("exp_avg_sqs", exp_avg_sqs.size(), false);
        check("numels", numels.size(), false);
        check("max_exp_avg_sqs", max_exp_avg_sqs.size(), true);
        check("corrections", corrections.size(), true);
        const DType dt = dtype_from_code(dtype);
        cpu::AdamWScalars s;
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
        cpu::adamw_step(static_cast<int64_t>(n), params.data(), grads.data(), exp_avgs.data(),
                        exp_avg_sqs.data(), max_exp_avg_sqs.empty() ? nullptr : max_exp_avg_sqs.data(),
                        corrections.empty() ? nullptr : corrections.data(), numels.data(), dt, s);
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
      py::arg("max_exp_avg_sqs"), py::arg("corrections"), py::arg("numels"), py::arg("dtype"), py::arg("lr"),
      py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("bc1"),
      py::arg("bc2"), py::arg("alpha"), py::arg("maximize"));

  m.def("adamw_step_isa", &cpu::adamw_step_isa,
        "Instruction set the float32/float64/bfloat16 AdamW loops dispatch to on this CPU");
}

}  // namespace pykernels::bind
