// kernels._cuda.aggregate_mean, kernels._cuda.aggregate_blocks_chunk, kernels._cuda.aggregate_mean_of_blocks
#include "bind/bind.h"
#include "cuda/aggregate.h"

namespace pykernels::bind {

void bind_aggregate(py::module_& m) {
  m.def(
      "aggregate_mean",
      [](std::uintptr_t client_table, std::uintptr_t weights, int64_t num_clients, int64_t numel,
         std::uintptr_t out, int dtype, std::uintptr_t stream) {
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cuda::aggregate_mean(ptr<const int64_t>(client_table), ptr<const void>(weights), num_clients, numel,
                             ptr<void>(out), dt, reinterpret_cast<void*>(stream));
      },
      py::arg("client_table"), py::arg("weights"), py::arg("num_clients"), py::arg("numel"), py::arg("out"),
      py::arg("dtype"), py::arg("stream"));

  m.def("aggregate_blocks_chunk", &cuda::aggregate_blocks_chunk);

  m.def(
      "aggregate_mean_of_blocks",
      [](std::uintptr_t client_table, std::uintptr_t weights, int64_t num_clients, std::uintptr_t chunk_table,
         int64_t num_chunks, std::uintptr_t block_offset, std::uintptr_t block_size, std::uintptr_t first_chunk,
         int64_t num_blocks, std::uintptr_t partial, std::uintptr_t out, int dtype, std::uintptr_t stream) {
        const DType dt = dtype_from_code(dtype);
        py::gil_scoped_release release;
        cuda::aggregate_mean_of_blocks(ptr<const int64_t>(client_table), ptr<const void>(weights), num_clients,
                                       ptr<const int64_t>(chunk_table), num_chunks, ptr<const int64_t>(block_offset),
                                       ptr<const int64_t>(block_size), ptr<const int64_t>(first_chunk), num_blocks,
                                       ptr<double>(partial), ptr<void>(out), dt, reinterpret_cast<void*>(stream));
      },
      py::arg("client_table"), py::arg("weights"), py::arg("num_clients"), py::arg("chunk_table"),
      py::arg("num_chunks"), py::arg("block_offset"), py::arg("block_size"), py::arg("first_chunk"),
      py::arg("num_blocks"), py::arg("partial"), py::arg("out"), py::arg("dtype"), py::arg("stream"));
}

}  // namespace pykernels::bind
