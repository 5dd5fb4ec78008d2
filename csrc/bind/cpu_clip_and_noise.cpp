// kernels._C: bindings of clip_and_noise (filled in by the clip_and_noise backends).
#include "bind/bind.h"

namespace pykernels::bind {

void bind_clip_and_noise(py::module_& m) {}

}  // namespace pykernels::bind
