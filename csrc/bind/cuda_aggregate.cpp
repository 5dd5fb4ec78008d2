// kernels._cuda: bindings of aggregate (filled in by the aggregate backends).
#include "bind/bind.h"

namespace pykernels::bind {

void bind_aggregate(py::module_& m) {}

}  // namespace pykernels::bind
