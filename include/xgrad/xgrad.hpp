#pragma once
// Everything: #include <xgrad/xgrad.hpp>
#include "xgrad/attrs.hpp"
#include "xgrad/autodiff.hpp"
#include "xgrad/compile.hpp"
#include "xgrad/error.hpp"
#include "xgrad/format.hpp"
#include "xgrad/gradcheck.hpp"
#include "xgrad/graph.hpp"
#include "xgrad/loss.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/tensor.hpp"
