// fused_matmul: a matrix product with a shared right operand and its elementwise epilogue (bias
// along the last axis, activation, residual, dropout's and ReLU's gradients), made by the compiler from the
// graph's separate ops (compiler/passes/fuse_epilogues.cpp). The epilogue runs on each piece of the
// product while it is in cache, with the same functors and the same SIMD/scalar split as the
// separate kernels: results agree bit for bit with the unfused program.
//
// A gated product may write over its gate (the ReLU output, which dies there in the backward pass),
// which saves a buffer of the product's size: each piece of rows first notes which gate elements
// are positive, in a byte per element of per-thread scratch, then its GEMM overwrites them.
#include <algorithm>
#include <cstdint>

#include "xgrad/kernels/dropout.hpp"
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

/// c[i] *= the dropout mask's element i, for i in [begin, end): the values op_dropout_mask's kernel
/// gives, multiplied as `mul` multiplies.
template <class T>
void apply_dropout_mask(const EpilogueAttr& attr, const RunContext& ctx, T* c, std::int64_t begin, std::int64_t end) {
  constexpr std::int64_t kChunk = 256;
  T mask[kChunk];
  for (std::int64_t first = begin; first < end; first += kChunk) {
    const std::int64_t count = std::min(kChunk, end - first);
    kernels::dropout_mask(mask, count, attr.dropout, attr.seed, ctx.run_index, ctx.training, first);
    for (std::int64_t i = 0; i < count; ++i) c[first + i] = c[first + i] * mask[i];
  }
}

/// How the product is cut (kernels::gemm_batch's pieces): a gate can be noted piece by piece, and
/// overwritten, only when the pieces are whole rows.
kernels::GemmPieces product_pieces(const ProductDims& d) { return kernels::gemm_pieces(d.rows, d.n, d.k, 1); }

ProductDims product_dims_of(const Node& node, std::span<const Node> nodes) {
  const Shape* shapes[] = {&nodes[static_cast<std::size_t>(node.inputs[0])].shape, &nodes[static_cast<std::size_t>(node.inputs[1])].shape};
  return product_dims(node, shapes);
}

bool gate_by_rows(const Node& node, const ProductDims& d) {
  return std::get<EpilogueAttr>(node.attrs).gated && d.k > 0 && d.rows > 0 && product_pieces(d).by_rows;
}

/// The gate is noted before each piece's GEMM, so the output may take its bytes, unless another
/// operand reads the same value.
int gated_in_place_operand(const Node& node, std::span<const Node> nodes) {
  if (!gate_by_rows(node, product_dims_of(node, nodes))) return -1;
  const int gate = node.inputs.back();
  if (std::count(node.inputs.begin(), node.inputs.end(), gate) > 1) return -1;
  return static_cast<int>(node.inputs.size()) - 1;
}

/// A byte per element of one piece, for each thread at work.
std::size_t gated_workspace(const Node& node, std::span<const Node> nodes, int slots) {
  const ProductDims d = product_dims_of(node, nodes);
  if (!gate_by_rows(node, d)) return 0;
  const kernels::GemmPieces pieces = product_pieces(d);
  return static_cast<std::size_t>(std::clamp<std::int64_t>(slots, 1, pieces.per_product) * pieces.block * d.n);
}

void fused_matmul_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const auto& attr = std::get<EpilogueAttr>(node.attrs);
  const Shape* shapes[] = {in[0].shape, in[1].shape};
  const ProductDims dims = product_dims(node, shapes);
  const auto [rows, n, k] = dims;
  visit_float(out.dtype, [&]<class T>() {
    const T* bias = attr.bias ? in[2].as<T>() : nullptr;
    const T* residual = attr.residual ? in[attr.bias ? 3 : 2].as<T>() : nullptr;
    const T* gate = attr.gated ? in.back().as<T>() : nullptr;
    T* c = out.as<T>();
    // The separate kernels' order: (product + bias), activation, + residual, element by element.
    const auto epilogue_before_gate = [&](std::int64_t begin, std::int64_t end) {
      if (bias != nullptr) {
        for (std::int64_t row_start = begin - begin % n; row_start < end; row_start += n) {
          const std::int64_t first = std::max(begin, row_start), last = std::min(end, row_start + n);
          kernels::map_binary(c + first, 1, bias + (first - row_start), 1, c + first, last - first, Add{});
        }
      }
      apply_activation(attr.activation, c + begin, end - begin);
      if (residual != nullptr) kernels::map_binary(c + begin, 1, residual + begin, 1, c + begin, end - begin, Add{});
      if (attr.dropout > 0.0) apply_dropout_mask(attr, ctx, c, begin, end);
    };
    // Then the gate: greater(gate, 0) * value, as the separate comparison and product compute it.
    const auto epilogue = [&](std::int64_t begin, std::int64_t end) {
      epilogue_before_gate(begin, end);
      if (gate == nullptr) return;
      for (std::int64_t i = begin; i < end; ++i) c[i] = static_cast<T>(gate[i] > T(0)) * c[i];
    };
    if (gate_by_rows(node, dims)) {
      const kernels::GemmPieces pieces = product_pieces(dims);
      const std::int64_t per_slot = pieces.block * n;
      const std::int64_t slots = std::clamp<std::int64_t>(static_cast<std::int64_t>(ctx.workspace_bytes) / per_slot, 1, pieces.per_product);
      auto* const positive = static_cast<std::uint8_t*>(ctx.workspace);
      const auto run_slot = [&](std::int64_t slot) {
        std::uint8_t* noted = positive + slot * per_slot;
        for (std::int64_t p = pieces.per_product * slot / slots; p < pieces.per_product * (slot + 1) / slots; ++p) {
          const kernels::GemmPiece at = kernels::gemm_piece_range(pieces, p, rows, n);
          const T* g = gate + at.r0 * n;
          const std::int64_t count = (at.r1 - at.r0) * n;
          for (std::int64_t i = 0; i < count; ++i) noted[i] = g[i] > T(0);
          kernels::gemm_piece(pieces, p, false, attr.product.transpose_b, rows, n, k, in[0].as<T>(), 0, in[1].as<T>(), 0, c);
          epilogue_before_gate(at.r0 * n, at.r1 * n);
          T* cr = c + at.r0 * n;
          for (std::int64_t i = 0; i < count; ++i) cr[i] = static_cast<T>(noted[i]) * cr[i];
        }
      };
      if (ctx.pool == nullptr || slots == 1) {
        run_slot(0);
      } else {
        ctx.pool->parallel_for(slots, [&](std::int64_t first, std::int64_t last) {
          for (std::int64_t slot = first; slot < last; ++slot) run_slot(slot);
        });
      }
      return;
    }
    if (k == 0) {
      std::fill(c, c + out.numel(), T(0));
      epilogue(0, out.numel());
      return;
    }
    kernels::gemm_batch(ctx.pool, false, attr.product.transpose_b, rows, n, k, 1, in[0].as<T>(), 0, in[1].as<T>(), 0, c, epilogue);
  });
}

std::uint64_t fused_matmul_flops(const Node& node, std::span<const Node> nodes) {
  return 2 * static_cast<std::uint64_t>(node.shape.numel()) * static_cast<std::uint64_t>(product_dims_of(node, nodes).k);
}

}  // namespace

// Never differentiated: it exists only in compiled programs, after grad() has run.
const OpDef op_fused_matmul{.name = "fused_matmul", .forward = fused_matmul_kernel, .differentiable = false,
                            .matmul_flops = fused_matmul_flops, .workspace = gated_workspace,
                            .in_place_operand = gated_in_place_operand};

}  // namespace xg
