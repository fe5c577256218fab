// fused_matmul: a matrix product with a shared right operand and its elementwise epilogue (bias
// along the last axis, activation, residual), made by the compiler from the graph's separate ops
// (compiler/passes/fuse_epilogues.cpp). The epilogue runs on each piece of the product while it is
// in cache, with the same functors and the same SIMD/scalar split as the separate kernels: results
// agree bit for bit with the unfused program.
#include "xgrad/kernels/functors.hpp"
#include "xgrad/kernels/gemm.hpp"
#include "xgrad/kernels/simd.hpp"
#include "xgrad/op_def.hpp"

namespace xg {
namespace {

using namespace kernels::functors;

struct ProductDims {
  std::int64_t rows, n, k;
};
ProductDims product_dims(const Node& node, std::span<const Shape* const> operands) {
  const auto& attr = std::get<EpilogueAttr>(node.attrs);
  const Shape& a = *operands[0];
  const Shape& b = *operands[1];
  const std::int64_t n = attr.product.transpose_b ? b[0] : b[1];
  return {n == 0 ? 0 : node.shape.numel() / n, n, a[a.rank() - 1]};
}

template <class T>
void apply_activation(EpilogueActivation activation, T* c, std::int64_t count) {
  switch (activation) {
    case EpilogueActivation::none: return;
    case EpilogueActivation::relu: kernels::map_unary(c, c, count, Relu{}); return;
    case EpilogueActivation::gelu_erf: kernels::map_unary(c, c, count, GeluErf{}); return;
    case EpilogueActivation::gelu_tanh: kernels::map_unary(c, c, count, GeluTanh{}); return;
  }
}

void fused_matmul_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const auto& attr = std::get<EpilogueAttr>(node.attrs);
  const Shape* shapes[] = {in[0].shape, in[1].shape};
  const auto [rows, n, k] = product_dims(node, shapes);
  visit_float(out.dtype, [&]<class T>() {
    const T* bias = attr.bias ? in[2].as<T>() : nullptr;
    const T* residual = attr.residual ? in[attr.bias ? 3 : 2].as<T>() : nullptr;
    T* c = out.as<T>();
    // The separate kernels' order: (product + bias), activation, + residual, element by element.
    const auto epilogue = [&](std::int64_t begin, std::int64_t end) {
      if (bias != nullptr) {
        for (std::int64_t row_start = begin - begin % n; row_start < end; row_start += n) {
          const std::int64_t first = std::max(begin, row_start), last = std::min(end, row_start + n);
          kernels::map_binary(c + first, 1, bias + (first - row_start), 1, c + first, last - first, Add{});
        }
      }
      apply_activation(attr.activation, c + begin, end - begin);
      if (residual != nullptr) kernels::map_binary(c + begin, 1, residual + begin, 1, c + begin, end - begin, Add{});
    };
    if (k == 0) {
      std::fill(c, c + out.numel(), T(0));
      epilogue(0, out.numel());
      return;
    }
    kernels::gemm_batch(ctx.pool, false, attr.product.transpose_b, rows, n, k, 1, in[0].as<T>(), 0, in[1].as<T>(), 0, c, epilogue);
  });
}

std::uint64_t fused_matmul_flops(const Node& node, std::span<const Node> nodes) {
  const Shape* shapes[] = {&nodes[static_cast<std::size_t>(node.inputs[0])].shape, &nodes[static_cast<std::size_t>(node.inputs[1])].shape};
  return 2 * static_cast<std::uint64_t>(node.shape.numel()) * static_cast<std::uint64_t>(product_dims(node, shapes).k);
}

}  // namespace

// Never differentiated: it exists only in compiled programs, after grad() has run.
const OpDef op_fused_matmul{.name = "fused_matmul", .forward = fused_matmul_kernel, .differentiable = false,
                            .matmul_flops = fused_matmul_flops};

}  // namespace xg
