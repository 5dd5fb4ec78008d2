// kernels._C.aggregate_mean, kernels._C.aggregate_mean_of_blocks
#include "bind/bind.h"
#include "cpu/aggregate.h"

namespace pykernels::bind {

namespace {

std::vector<const void*> client_pointers(const std::vector<std::uintptr_t>& clients,
                                         const std::vector<double>& weights) {
  if (clients.empty()) throw std::invalid_argument("aggregate: clients must not be empty");
  if (weights.size() != clients.size()) {
    throw std::invalid_argument("aggregate: got " + std::to_string(weights.size()) + " weights for " +
                                std::to_string(clients.size()) + " clients");
  }
  std::vector<const void*> out(clients.size());
  for (size_t s = 0; s < clients.size(); ++s) out[s] = ptr<const void>(clients[s]);
  return out;
}

}  // namespace

void bind_aggregate(py::module_& m) {
  m.def(
      "aggregate_mean",
      [](const std::vector<std::uintptr_t>& clients, const std::vector<double>& weights, int64_t numel,
         std::uintptr_t out, int dtype) {
        const auto pointers = client_pointers(clients, weights);
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cpu::aggregate_mean(pointers.data(), weights.data(), static_cast<int64_t>(pointers.size()), numel,
                            ptr<void>(out), dt);
      },
      py::arg("clients"), py::arg("weights"), py::arg("numel"), py::arg("out"), py::arg("dtype"));

  m.def(
      "aggregate_mean_of_blocks",
      [](const std::vector<std::uintptr_t>& clients, const std::vector<double>& weights,
         const std::vector<int64_t>& blocks, std::uintptr_t out, int dtype) {
        const auto pointers = client_pointers(clients, weights);
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cpu::aggregate_mean_of_blocks(pointers.data(), weights.data(), static_cast<int64_t>(pointers.size()),
                                      blocks.data(), static_cast<int64_t>(blocks.size()), ptr<void>(out), dt);
      },
      py::arg("clients"), py::arg("weights"), py::arg("blocks"), py::arg("out"), py::arg("dtype"));
}

}  // namespace pykernels::bind
