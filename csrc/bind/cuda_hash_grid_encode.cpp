// kernels._cuda: bindings of hash_grid_encode (filled in by the hash_grid_encode backends).
#include "bind/bind.h"

namespace pykernels::bind {

void bind_hash_grid_encode(py::module_& m) {}

}  // namespace pykernels::bind
