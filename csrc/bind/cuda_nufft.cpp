// kernels._cuda: bindings of nufft (filled in by the nufft backends).
#include "bind/bind.h"

namespace pykernels::bind {

void bind_nufft(py::module_& m) {}

}  // namespace pykernels::bind
