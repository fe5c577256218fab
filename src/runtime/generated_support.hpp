#pragma once
// What generated model sources include: the op table and the kernels their statements call. Not
// installed: generated code is compiled inside this project's build (graph/meson.build).
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>

#include <fmt/format.h>

#include "kernels/dropout.hpp"
#include "kernels/functors.hpp"
#include "kernels/fused_elementwise.hpp"
#include "kernels/gemm.hpp"
#include "kernels/layer_norm.hpp"
#include "kernels/reduce.hpp"
#include "kernels/simd.hpp"
#include "kernels/softmax.hpp"
#include "kernels/strided.hpp"
#include "ops/op_def.hpp"
#include "runtime/kernel_environment.hpp"
#include "xgrad/generated_model.hpp"
