#pragma once
// Attention softmax(q k^T * scale + bias) [dropout] @ v over (batch x heads) independent problems,
// the FlashAttention-2 way: queries in blocks, keys in tiles, an online softmax in the forward pass
// and probabilities recomputed from stored per-row statistics in the backward pass, so that memory
// stays linear in the sequence lengths (no Sq x Sk matrix exists beyond one tile). Tiles go through
// BLAS GEMM; the row work between them is SIMD. No graph knowledge.
//
// The statistics are the row maximum m and the sum l of exp(s - m), as in FlashAttention-1, rather
// than FlashAttention-2's single logsumexp m + log(l): a row whose keys are all blocked by a -1e9
// bias has m near -1e9, where m + log(l) keeps no digits of log(l) (in f32 it rounds to m itself),
// while exp(s - m) / l is as exact as the unfused softmax.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "xgrad/kernels/counter_rng.hpp"
#include "xgrad/kernels/gemm.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/kernels/simd.hpp"

namespace xg::kernels {

/// q (heads, q_len, qk_dim), k (heads, k_len, qk_dim), v (heads, k_len, v_dim), all contiguous;
/// `heads` counts batch x heads. Sequence-major: q, k, v, the output and the gradients are (batch,
/// len, heads_per_batch, dim) instead, the layout the projections produce, so that no permute is needed.
struct AttentionShape {
  std::int64_t heads = 0, q_len = 0, k_len = 0, qk_dim = 0, v_dim = 0;
  std::int64_t heads_per_batch = 1;  // to split a flat head index into (batch, head) for the bias
  bool causal = false;               // keys j > i get kBlockedScore added, as by an (Sq, Sk) bias
  bool sequence_major = false;

  /// Where head `head`'s first row starts in a per-head array of `len` rows of `dim` elements.
  std::int64_t head_start(std::int64_t head, std::int64_t len, std::int64_t dim) const {
    if (!sequence_major) return head * len * dim;
    return (head / heads_per_batch) * len * heads_per_batch * dim + (head % heads_per_batch) * dim;
  }
  /// The distance between consecutive rows of one head in such an array.
  std::int64_t row_stride(std::int64_t dim) const { return sequence_major ? heads_per_batch * dim : dim; }
};

/// Query rows per block and keys per tile: a tile of scores stays in L2 and the GEMMs on it stay
/// below the size at which OpenBLAS would start its own threads.
inline constexpr std::int64_t kQueryBlock = 64;
inline constexpr std::int64_t kKeyTile = 128;

/// An additive bias seen as (batch, heads, q_len, k_len) with stride 0 along broadcast axes; the
/// same strides address its gradient, which has the bias's own shape.
template <class T>
struct BiasView {
  T* data = nullptr;  // null: no bias
  std::int64_t batch_stride = 0, head_stride = 0, row_stride = 0, col_stride = 0;

  T* row(const AttentionShape& s, std::int64_t head, std::int64_t i) const {
    return data + (head / s.heads_per_batch) * batch_stride + (head % s.heads_per_batch) * head_stride + i * row_stride;
  }
};

/// Dropout on the probabilities, decided per element (head, i, j) exactly as dropout_mask decides
/// element (head * q_len + i) * k_len + j of a (batch, heads, q_len, k_len) mask.
struct DropoutStream {
  double p = 0.0;  // 0: off (also in evaluation mode)
  std::uint64_t seed = 0, run = 0;

  bool active() const { return p > 0.0; }
  template <class T>
  T keep_scale() const { return static_cast<T>(1.0 / (1.0 - p)); }
  /// The flat mask index of element (head, i, j).
  static std::uint64_t element(const AttentionShape& s, std::int64_t head, std::int64_t i, std::int64_t j) {
    return static_cast<std::uint64_t>((head * s.q_len + i) * s.k_len + j);
  }
  /// values[j] *= keep_scale or 0 for the `count` elements of row i from key j0 on; the factors go
  /// to `factors` too when it is not null.
  template <class T>
  void apply_row(const AttentionShape& s, std::int64_t head, std::int64_t i, std::int64_t j0, std::int64_t count,
                 T* values, T* factors = nullptr) const {
    const T kept = keep_scale<T>();
    const std::uint64_t first = element(s, head, i, j0);
    for (std::int64_t j = 0; j < count; ++j) {
      const T factor = uniform_at(seed, run, first + static_cast<std::uint64_t>(j)) >= p ? kept : T(0);
      values[j] *= factor;
      if (factors != nullptr) factors[j] = factor;
    }
  }
};

/// Scratch elements one worker needs for the forward pass.
inline std::int64_t attention_forward_scratch(const AttentionShape& s) {
  const std::int64_t rows = std::min(kQueryBlock, s.q_len), cols = std::min(kKeyTile, s.k_len);
  return rows * cols;
}

/// Scratch elements one worker needs for the backward pass: besides the tiles, one head's dQ and
/// one key tile's dK and dV, accumulated there so that the gradients may take q's, k's and v's bytes.
inline std::int64_t attention_backward_scratch(const AttentionShape& s, bool dropout) {
  const std::int64_t cols = std::min(kKeyTile, s.k_len);
  const std::int64_t tile = std::min(kQueryBlock, s.q_len) * cols;
  return (dropout ? 3 : 2) * tile + s.q_len * s.qk_dim + cols * (s.qk_dim + s.v_dim);
}

namespace detail {

/// scores (rows x cols, row stride cols) = scale * q_block k_tile^T + bias, for one head's q and k.
template <class T>
void tile_scores(const AttentionShape& s, std::int64_t head, std::int64_t i0, std::int64_t rows, std::int64_t j0,
                 std::int64_t cols, const T* q, const T* k, const BiasView<T>& bias, T scale, T* scores) {
  const std::int64_t ld = s.row_stride(s.qk_dim);
  gemm(false, true, rows, cols, s.qk_dim, scale, q + i0 * ld, ld, k + j0 * ld, ld, T(0), scores, cols);
  if (bias.data != nullptr) {
    for (std::int64_t r = 0; r < rows; ++r) {
      T* row = scores + r * cols;
      const T* b = bias.row(s, head, i0 + r) + j0 * bias.col_stride;
      map_binary(row, 1, b, bias.col_stride, row, cols, [](auto x, auto y) { return x + y; });
    }
  }
  if (!s.causal) return;
  // Added after the bias, as the models' causal bias was added to the padding bias: a key blocked by
  // both stays far below every key blocked by one, whose scores then decide an all-blocked row.
  for (std::int64_t r = 0; r < rows; ++r) {
    T* row = scores + r * cols;
    for (std::int64_t j = std::max(j0, i0 + r + 1); j < j0 + cols; ++j) row[j - j0] += static_cast<T>(kBlockedScore);
  }
}

}  // namespace detail

/// out (heads, q_len, v_dim), and the row statistics row_max and row_sum (heads, q_len) for heads
/// [first, last).
template <class T>
void flash_attention_forward(const AttentionShape& s, const T* q, const T* k, const T* v, const BiasView<T>& bias,
                             T scale, const DropoutStream& dropout, T* out, T* row_max, T* row_sum, T* scratch,
                             std::int64_t first, std::int64_t last) {
  constexpr T lowest = -std::numeric_limits<T>::infinity();
  T* scores = scratch;
  const std::int64_t lv = s.row_stride(s.v_dim);
  for (std::int64_t head = first; head < last; ++head) {
    const T* qh = q + s.head_start(head, s.q_len, s.qk_dim);
    const T* kh = k + s.head_start(head, s.k_len, s.qk_dim);
    const T* vh = v + s.head_start(head, s.k_len, s.v_dim);
    T* oh = out + s.head_start(head, s.q_len, s.v_dim);
    T* mh = row_max + head * s.q_len;
    T* lh = row_sum + head * s.q_len;
    if (s.k_len == 0) {  // softmax over no keys: an empty sum, as the unfused matmul gives
      for (std::int64_t i = 0; i < s.q_len; ++i) std::fill(oh + i * lv, oh + i * lv + s.v_dim, T(0));
      std::fill(mh, mh + s.q_len, T(0));
      std::fill(lh, lh + s.q_len, T(1));
      continue;
    }
    for (std::int64_t i0 = 0; i0 < s.q_len; i0 += kQueryBlock) {
      const std::int64_t rows = std::min(kQueryBlock, s.q_len - i0);
      std::fill(mh + i0, mh + i0 + rows, lowest);
      std::fill(lh + i0, lh + i0 + rows, T(0));
      for (std::int64_t j0 = 0; j0 < s.k_len; j0 += kKeyTile) {
        const std::int64_t cols = std::min(kKeyTile, s.k_len - j0);
        detail::tile_scores(s, head, i0, rows, j0, cols, qh, kh, bias, scale, scores);
        for (std::int64_t r = 0; r < rows; ++r) {
          T* p = scores + r * cols;
          const T previous = mh[i0 + r];
          const T current = std::max(previous, reduce_max(p, cols));
          // An all -inf row so far: shift by 0 so that exp sees -inf, never -inf - -inf.
          const T shift = current == lowest ? T(0) : current;
          map_unary(p, p, cols, [shift](auto x) {
            using std::exp;
            return exp(x - decltype(x)(shift));
          });
          const T rescale = std::exp(previous - shift);
          lh[i0 + r] = lh[i0 + r] * rescale + reduce_sum(p, cols);
          mh[i0 + r] = current;
          if (j0 > 0 && rescale != T(1)) {
            T* o = oh + (i0 + r) * lv;
            map_unary(o, o, s.v_dim, [rescale](auto x) { return x * decltype(x)(rescale); });
          }
          if (dropout.active()) dropout.apply_row(s, head, i0 + r, j0, cols, p);
        }
        gemm(false, false, rows, s.v_dim, cols, T(1), scores, cols, vh + j0 * lv, lv, j0 == 0 ? T(0) : T(1), oh + i0 * lv, lv);
      }
      for (std::int64_t r = 0; r < rows; ++r) {
        T* o = oh + (i0 + r) * lv;
        const T inverse = T(1) / lh[i0 + r];
        map_unary(o, o, s.v_dim, [inverse](auto x) { return x * decltype(x)(inverse); });
      }
    }
  }
}

/// What the backward pass needs of the forward pass's output, for heads [first, last): row_dot =
/// D_i = dO_i . O_i per query row. Computed ahead, so that O need not outlive the backward pass's
/// start (its other reader, the output projection's weight gradient, comes before).
template <class T>
void attention_row_dots(const AttentionShape& s, const T* out, const T* d_out, T* row_dot, std::int64_t first,
                        std::int64_t last) {
  const std::int64_t lv = s.row_stride(s.v_dim);
  for (std::int64_t head = first; head < last; ++head) {
    const T* oh = out + s.head_start(head, s.q_len, s.v_dim);
    const T* doh = d_out + s.head_start(head, s.q_len, s.v_dim);
    T* dots = row_dot + head * s.q_len;
    for (std::int64_t i = 0; i < s.q_len; ++i) {
      dots[i] = reduce_binary(oh + i * lv, doh + i * lv, s.v_dim, [](auto x, auto y) { return x * y; });
    }
  }
}

/// Gradients for heads [first, last): d_q, d_k, d_v (shaped like q, k, v) are overwritten; d_bias,
/// when its data is not null, is accumulated into (the caller zeroes it once).
///
/// d_q may be q, d_k k and d_v v (the planner gives a dying q, k, v's bytes to their gradients): a
/// head's dQ is accumulated in scratch and written when the head is done, and a key tile's dK and
/// dV when that tile is, after which neither this head nor any other reads those elements again.
template <class T>
void flash_attention_backward(const AttentionShape& s, const T* q, const T* k, const T* v, const BiasView<T>& bias,
                              T scale, const DropoutStream& dropout, const T* row_dot, const T* row_max,
                              const T* row_sum, const T* d_out,
                              T* d_q, T* d_k, T* d_v, const BiasView<T>& d_bias, T* scratch, std::int64_t first,
                              std::int64_t last) {
  const std::int64_t tile_cols = std::min(kKeyTile, s.k_len);
  const std::int64_t tile = std::min(kQueryBlock, s.q_len) * tile_cols;
  T* probs = scratch;              // P, recomputed from the row statistics
  T* d_scores = probs + tile;      // dropped P for dV, then dP, then dS
  T* mask = d_scores + tile;       // keep_scale or 0 (dropout only)
  T* head_dq = mask + (dropout.active() ? tile : 0);  // (q_len, qk_dim)
  T* tile_dk = head_dq + s.q_len * s.qk_dim;          // (tile_cols, qk_dim)
  T* tile_dv = tile_dk + tile_cols * s.qk_dim;        // (tile_cols, v_dim)
  const std::int64_t lqk = s.row_stride(s.qk_dim), lv = s.row_stride(s.v_dim);
  const auto store_rows = [](const T* from, std::int64_t rows, std::int64_t dim, T* to, std::int64_t stride) {
    for (std::int64_t i = 0; i < rows; ++i) std::copy(from + i * dim, from + (i + 1) * dim, to + i * stride);
  };
  for (std::int64_t head = first; head < last; ++head) {
    const T* qh = q + s.head_start(head, s.q_len, s.qk_dim);
    const T* kh = k + s.head_start(head, s.k_len, s.qk_dim);
    const T* vh = v + s.head_start(head, s.k_len, s.v_dim);
    const T* doh = d_out + s.head_start(head, s.q_len, s.v_dim);
    const T* dots = row_dot + head * s.q_len;  // D_i = dO_i . O_i = sum_j P_ij dP_ij
    const T* mh = row_max + head * s.q_len;
    const T* lh = row_sum + head * s.q_len;
    T* dqh = d_q + s.head_start(head, s.q_len, s.qk_dim);
    T* dkh = d_k + s.head_start(head, s.k_len, s.qk_dim);
    T* dvh = d_v + s.head_start(head, s.k_len, s.v_dim);
    std::fill(head_dq, head_dq + s.q_len * s.qk_dim, T(0));
    for (std::int64_t j0 = 0; j0 < s.k_len; j0 += kKeyTile) {
      const std::int64_t cols = std::min(kKeyTile, s.k_len - j0);
      std::fill(tile_dk, tile_dk + cols * s.qk_dim, T(0));
      std::fill(tile_dv, tile_dv + cols * s.v_dim, T(0));
      for (std::int64_t i0 = 0; i0 < s.q_len; i0 += kQueryBlock) {
        const std::int64_t rows = std::min(kQueryBlock, s.q_len - i0);
        detail::tile_scores(s, head, i0, rows, j0, cols, qh, kh, bias, scale, probs);
        for (std::int64_t r = 0; r < rows; ++r) {
          T* p = probs + r * cols;
          const T shift = mh[i0 + r], inverse = T(1) / lh[i0 + r];
          map_unary(p, p, cols, [shift, inverse](auto x) {
            using std::exp;
            return exp(x - decltype(x)(shift)) * decltype(x)(inverse);
          });
          if (dropout.active()) {
            std::copy(p, p + cols, d_scores + r * cols);
            dropout.apply_row(s, head, i0 + r, j0, cols, d_scores + r * cols, mask + r * cols);
          }
        }
        // dV_j += Z^T dO_i with Z the probabilities as used (after dropout).
        gemm(true, false, cols, s.v_dim, rows, T(1), dropout.active() ? d_scores : probs, cols, doh + i0 * lv, lv, T(1),
             tile_dv, s.v_dim);
        // dP = (dO_i V_j^T) * mask, then dS = P * (dP - D_i).
        gemm(false, true, rows, cols, s.v_dim, T(1), doh + i0 * lv, lv, vh + j0 * lv, lv, T(0), d_scores, cols);
        for (std::int64_t r = 0; r < rows; ++r) {
          T* ds = d_scores + r * cols;
          const T* p = probs + r * cols;
          const T centre = dots[i0 + r];
          if (dropout.active()) {
            map_binary(ds, 1, mask + r * cols, 1, ds, cols, [](auto x, auto y) { return x * y; });
          }
          map_binary(p, 1, ds, 1, ds, cols, [centre](auto x, auto y) { return x * (y - decltype(x)(centre)); });
          if (d_bias.data == nullptr) continue;
          T* db = d_bias.row(s, head, i0 + r) + j0 * d_bias.col_stride;
          if (d_bias.col_stride == 0) *db += reduce_sum(ds, cols);
          else map_binary(db, 1, ds, 1, db, cols, [](auto x, auto y) { return x + y; });
        }
        gemm(false, false, rows, s.qk_dim, cols, scale, d_scores, cols, kh + j0 * lqk, lqk, T(1), head_dq + i0 * s.qk_dim,
             s.qk_dim);
        gemm(true, false, cols, s.qk_dim, rows, scale, d_scores, cols, qh + i0 * lqk, lqk, T(1), tile_dk, s.qk_dim);
      }
      store_rows(tile_dk, cols, s.qk_dim, dkh + j0 * lqk, lqk);
      store_rows(tile_dv, cols, s.v_dim, dvh + j0 * lv, lv);
    }
    store_rows(head_dq, s.q_len, s.qk_dim, dqh, lqk);
  }
}

}  // namespace xg::kernels
