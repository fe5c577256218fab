#pragma once
// The layers: #include <xgrad/nn.hpp>
#include "xgrad/nn/attention.hpp"
#include "xgrad/nn/embedding.hpp"
#include "xgrad/nn/feed_forward.hpp"
#include "xgrad/nn/linear.hpp"
#include "xgrad/nn/norm.hpp"
#include "xgrad/nn/positional.hpp"
#include "xgrad/nn/transformer.hpp"
