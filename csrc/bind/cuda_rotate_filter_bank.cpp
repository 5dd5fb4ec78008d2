// kernels._cuda.rotate_filter_bank (stub: filled by the group-convolution issue)
#include "bind/bind.h"

namespace pykernels::bind {

void bind_rotate_filter_bank(py::module_& /*m*/) {}

}  // namespace pykernels::bind
