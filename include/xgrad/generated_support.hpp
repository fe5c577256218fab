#pragma once
// What generated model sources include: the op table and the kernels their statements call. Installed
// with the other headers, so that a model generated in another project compiles against the
// installed package; the kernels under xgrad/kernels/ are that code's interface to the library, not
// an API with a stability promise of its own.
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>

#include <fmt/format.h>

#include "xgrad/kernels/dropout.hpp"
#include "xgrad/kernels/functors.hpp"
#include "xgrad/kernels/fused_elementwise.hpp"
#include "xgrad/kernels/gemm.hpp"
#include "xgrad/kernels/layer_norm.hpp"
#include "xgrad/kernels/reduce.hpp"
#include "xgrad/kernels/simd.hpp"
#include "xgrad/kernels/softmax.hpp"
#include "xgrad/kernels/strided.hpp"
#include "xgrad/op_def.hpp"
#include "xgrad/kernel_environment.hpp"
#include "xgrad/generated_model.hpp"
