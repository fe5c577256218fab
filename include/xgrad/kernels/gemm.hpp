#pragma once
// Matrix products: the general row-major GEMM (f32 through oneDNN when the build has it, with
// OpenBLAS taking the shapes it runs faster, else CBLAS; f64 through CBLAS) and a batch of
// contiguous products at constant strides, split across a pool in pieces fixed by the shapes alone.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "xgrad/kernels/parallel.hpp"
#include "xgrad/thread_pool.hpp"

namespace xg::kernels {

/// op(A) is m x k, op(B) is k x n, C is m x n; lda, ldb and ldc are row strides in elements.
/// Degenerate sizes never reach the library (BLAS rejects a zero leading dimension): with k == 0
/// the product is zero and C becomes beta * C. The library runs on the calling thread (see
/// xgrad/kernel_environment.hpp). Out of line, in the library: which BLAS it calls is the
/// library's build choice, and code that calls the kernels (generated models) needs none of its
/// headers.
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc);

/// The library that runs one f32 product (kernels::gemm on the calling thread).
enum class GemmLibrary { onednn, cblas };

/// Chosen by the product's layout, inner length k and B's row stride, and the machine, alone, so
/// that a product runs the same code, and gives the same bits, in every Program and generated model
/// of the process and on any thread:
/// oneDNN when the build has it, except where oneDNN runs its AVX2 kernels, OpenBLAS has AVX2-class
/// kernels for the CPU and prefers_openblas() holds; CBLAS when the build has no oneDNN.
GemmLibrary f32_gemm_library(bool transpose_a, bool transpose_b, std::int64_t k, std::int64_t ldb);
/// The products oneDNN 2.6's AVX2 sgemm handles at half OpenBLAS's rate or worse, measured one piece
/// at a time on the workloads' shapes (bench/README.md, "Which library runs a product"): a
/// transposed left operand over a long inner dimension (weight gradients), and a plain right operand
/// with wide rows (oneDNN then reads it without packing, and rows 2 KiB or more apart collide in the
/// cache).
bool prefers_openblas(bool transpose_a, bool transpose_b, std::int64_t k, std::int64_t ldb);

/// How a batch of products is cut into pieces, each one GEMM call on one thread. The cut depends
/// on the shapes only, never on the thread count, so every element of C is computed by the same
/// call, the same way, whatever the pool: results agree bit for bit across thread counts (a
/// library's kernel may round differently for a different block shape, so the blocks must not
/// follow the threads).
struct GemmPieces {
  std::int64_t per_product = 1;  // pieces each product is cut into
  bool by_rows = true;           // cut along C's rows (repeats B's packing) or columns (A's)
  std::int64_t block = 0;        // rows or columns per piece (the last may be shorter)
};

/// A piece should hold at least this many floating-point operations: a hand-over to another
/// thread costs about a microsecond.
inline constexpr double kGemmPieceFlops = 1 << 22;
/// At most this many pieces per product (a power of two: they spread evenly over 1, 2, 4 and 8
/// threads), and none when the batch itself has this many products to spread.
inline constexpr std::int64_t kMaxGemmPieces = 8;
/// Piece sizes are multiples of this (the register blocking of the libraries' kernels).
inline constexpr std::int64_t kGemmBlockAlignment = 16;

/// At most this many pieces per product whose inner dimension is at least twice C's longer side (a
/// weight gradient: k tokens summed into an m x n weight). Each piece packs the whole of the operand
/// its cut does not divide, k long, again: eight pieces of W2's weight gradients spent 10-15% of
/// their time on it (bench/README.md, "Pieces of weight gradients").
inline constexpr std::int64_t kMaxInnerDominantPieces = 2;

inline GemmPieces gemm_pieces(std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t count) {
  GemmPieces p;
  p.by_rows = m >= n;
  const std::int64_t extent = p.by_rows ? m : n;
  p.block = extent;
  if (count >= kMaxGemmPieces) return p;
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const std::int64_t max_pieces = k >= 2 * extent ? kMaxInnerDominantPieces : kMaxGemmPieces;
  std::int64_t pieces = 1;
  while (pieces < max_pieces && flops / static_cast<double>(2 * pieces) >= kGemmPieceFlops &&
         extent / (2 * pieces) >= kGemmBlockAlignment) {
    pieces *= 2;
  }
  const std::int64_t per_piece = (extent + pieces - 1) / pieces;
  p.block = (per_piece + kGemmBlockAlignment - 1) / kGemmBlockAlignment * kGemmBlockAlignment;
  p.per_product = (extent + p.block - 1) / p.block;
  return p;
}

/// Where piece p of a batch's cut lies: product `product`, rows [r0, r1) and columns [c0, c1) of its C.
struct GemmPiece {
  std::int64_t product, r0, r1, c0, c1;
};

/// Where piece p of `pieces` lies in products of m x n.
inline GemmPiece gemm_piece_range(const GemmPieces& pieces, std::int64_t p, std::int64_t m, std::int64_t n) {
  const std::int64_t i = p / pieces.per_product, part = p % pieces.per_product;
  const std::int64_t first = part * pieces.block, last = std::min((part + 1) * pieces.block, pieces.by_rows ? m : n);
  return pieces.by_rows ? GemmPiece{i, first, last, 0, n} : GemmPiece{i, 0, m, first, last};
}

/// Computes piece p of `pieces` with one GEMM call, as gemm_batch does (operands as gemm_batch takes
/// them): a kernel that schedules the pieces itself gets the same calls, and so the same bits.
template <class T>
GemmPiece gemm_piece(const GemmPieces& pieces, std::int64_t p, bool transpose_a, bool transpose_b, std::int64_t m,
                     std::int64_t n, std::int64_t k, const T* a, std::int64_t a_step, const T* b, std::int64_t b_step, T* c) {
  const std::int64_t lda = transpose_a ? m : k, ldb = transpose_b ? k : n;
  const GemmPiece at = gemm_piece_range(pieces, p, m, n);
  const std::int64_t i = at.product;
  const T* ai = a + i * a_step + (transpose_a ? at.r0 : at.r0 * lda);
  const T* bi = b + i * b_step + (transpose_b ? at.c0 * ldb : at.c0);
  gemm(transpose_a, transpose_b, at.r1 - at.r0, at.c1 - at.c0, k, T(1), ai, lda, bi, ldb, T(0), c + i * m * n + at.r0 * n + at.c0, n);
  return at;
}

/// What gemm_batch does to each finished part of C: nothing.
struct NoEpilogue {
  void operator()(std::int64_t, std::int64_t) const {}
};

/// `count` products, the i-th of A at a + i * a_step and B at b + i * b_step (a step of 0 shares
/// the operand) into consecutive C blocks, in the pieces gemm_pieces() chooses, spread over the
/// pool's threads. `epilogue(begin, end)` then runs over every flat range [begin, end) of C, each
/// element once: right after a piece of whole rows while it is still in cache, or, for pieces of
/// columns, over ranges cut at multiples of kChunkAlignment once the products are done. With
/// count == 1 every range starts at a multiple of kGemmBlockAlignment, so an elementwise epilogue
/// takes each element down the same path (SIMD or scalar tail) as a kernel over the whole of C.
template <class T, class Epilogue = NoEpilogue>
void gemm_batch(ThreadPool* pool, bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
                std::int64_t count, const T* a, std::int64_t a_step, const T* b, std::int64_t b_step, T* c,
                Epilogue&& epilogue = {}) {
  constexpr bool has_epilogue = !std::is_same_v<std::remove_cvref_t<Epilogue>, NoEpilogue>;
  const GemmPieces pieces = gemm_pieces(m, n, k, count);
  const auto piece = [&](std::int64_t p) {
    const GemmPiece at = gemm_piece(pieces, p, transpose_a, transpose_b, m, n, k, a, a_step, b, b_step, c);
    if constexpr (has_epilogue) {
      if (pieces.by_rows) epilogue(at.product * m * n + at.r0 * n, at.product * m * n + at.r1 * n);
    }
  };
  const std::int64_t total = count * pieces.per_product;
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(count);
  if (pool == nullptr || pool->size() == 1 || total == 1 || flops < 2 * kGemmPieceFlops) {
    for (std::int64_t p = 0; p < total; ++p) piece(p);
  } else {
    pool->parallel_for(total, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t p = first; p < last; ++p) piece(p);
    });
  }
  if constexpr (has_epilogue) {
    if (!pieces.by_rows) parallel_range(pool, count * m * n, epilogue);
  }
}

}  // namespace xg::kernels
