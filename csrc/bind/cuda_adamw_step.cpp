// kernels._cuda: bindings of adamw_step (filled in by the adamw_step backends).
#include "bind/bind.h"

namespace pykernels::bind {

void bind_adamw_step(py::module_& m) {}

}  // namespace pykernels::bind
