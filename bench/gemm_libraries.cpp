// Which library should run each matrix product of a training step: every product of the workloads'
// training graphs, cut into the pieces kernels::gemm_batch runs (gemm_pieces), each piece timed on
// one thread with oneDNN's sgemm and OpenBLAS's on 64-byte-aligned operands with the step's own
// strides, alternating, best of --rounds. It prints, per piece, both rates and the library
// kernels::f32_gemm_library picks, and per workload the single-thread GEMM time of a step with every
// piece on oneDNN, every piece on OpenBLAS, the pieces routed as xgrad routes them, and each piece on
// its faster library (the best any fixed per-shape rule could do). The fused attention's own small
// products are not included.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <cblas.h>
#include <omp.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.h>

#include <xgrad/kernels/gemm.hpp>
#include <xgrad/op_def.hpp>
#include <xgrad/xgrad.hpp>

#include "timing.hpp"
#include "workloads.hpp"

namespace {

using namespace xg;
using bench::Clock;

struct Piece {
  bool transpose_a, transpose_b;
  std::int64_t m, n, k, lda, ldb;
  auto key() const { return std::tie(transpose_a, transpose_b, m, n, k, lda, ldb); }
  bool operator<(const Piece& other) const { return key() < other.key(); }
};

struct AlignedFloats {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float[], Free> data;
  explicit AlignedFloats(std::int64_t count)
      : data(static_cast<float*>(std::aligned_alloc(64, static_cast<std::size_t>((count + 15) / 16 * 16) * sizeof(float)))) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::int64_t i = 0; i < count; ++i) data[static_cast<std::size_t>(i)] = dist(rng);
  }
};

/// The pieces of every product of the training step, with how many times each runs per step.
std::map<Piece, int> step_pieces(const Graph& graph) {
  std::map<Piece, int> pieces;
  for (int id = 0; id < graph.size(); ++id) {
    const Node& node = graph.node(id);
    if (node.op->name != std::string_view("matmul")) continue;
    const auto& attr = std::get<MatmulAttr>(node.attrs);
    const Shape& a = graph.node(node.inputs[0]).shape;
    const Shape& b = graph.node(node.inputs[1]).shape;
    if (a.rank() < 2 || b.rank() < 2) continue;
    const std::int64_t m = node.shape[node.shape.rank() - 2], n = node.shape[node.shape.rank() - 1];
    const std::int64_t k = attr.transpose_a ? a[a.rank() - 2] : a[a.rank() - 1];
    const std::int64_t batch = node.shape.numel() / (m * n);
    // As the matmul kernel calls gemm_batch: one tall product when B is one shared matrix.
    const bool shared_b = b.rank() == 2 && !attr.transpose_a;
    const std::int64_t rows = shared_b ? batch * m : m, count = shared_b ? 1 : batch;
    const kernels::GemmPieces cut = kernels::gemm_pieces(rows, n, k, count);
    const std::int64_t lda = attr.transpose_a ? rows : k, ldb = attr.transpose_b ? k : n;
    const std::int64_t extent = cut.by_rows ? rows : n;
    for (std::int64_t first = 0; first < extent; first += cut.block) {
      const std::int64_t size = std::min(cut.block, extent - first);
      const Piece piece{attr.transpose_a, attr.transpose_b, cut.by_rows ? size : rows, cut.by_rows ? n : size, k, lda, ldb};
      pieces[piece] += static_cast<int>(count);
    }
  }
  return pieces;
}

struct PieceTimes {
  double onednn_s = 1e30, openblas_s = 1e30;
};

PieceTimes time_piece(const Piece& p, int rounds) {
  const AlignedFloats a((p.transpose_a ? p.k : p.m) * p.lda), b((p.transpose_b ? p.n : p.k) * p.ldb), c(p.m * p.n);
  const double flops = 2.0 * static_cast<double>(p.m * p.n * p.k);
  const int repeats = static_cast<int>(std::max(1.0, 2e7 / flops));
  PieceTimes t;
  for (int round = 0; round < rounds; ++round) {
    for (const bool onednn : {true, false}) {
      const auto start = Clock::now();
      for (int r = 0; r < repeats; ++r) {
        if (onednn) {
          dnnl_sgemm(p.transpose_a ? 'T' : 'N', p.transpose_b ? 'T' : 'N', p.m, p.n, p.k, 1.0f, a.data.get(), p.lda,
                     b.data.get(), p.ldb, 0.0f, c.data.get(), p.n);
        } else {
          cblas_sgemm(CblasRowMajor, p.transpose_a ? CblasTrans : CblasNoTrans, p.transpose_b ? CblasTrans : CblasNoTrans,
                      static_cast<int>(p.m), static_cast<int>(p.n), static_cast<int>(p.k), 1.0f, a.data.get(),
                      static_cast<int>(p.lda), b.data.get(), static_cast<int>(p.ldb), 0.0f, c.data.get(), static_cast<int>(p.n));
        }
      }
      const double seconds = bench::ms_since(start) / 1e3 / repeats;
      double& best = onednn ? t.onednn_s : t.openblas_s;
      best = std::min(best, seconds);
    }
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  std::string which = "W1,W2,W3";
  int rounds = 12;
  CLI::App app{"Times every GEMM piece of the workloads' training steps with oneDNN and OpenBLAS on one thread.",
               "gemm_libraries"};
  app.option_defaults()->always_capture_default();
  app.add_option("--workloads", which, "any of W1,W2,W3, comma-separated");
  app.add_option("--rounds", rounds, "alternating timings per piece and library (the best counts)")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  omp_set_num_threads(1);
  openblas_set_num_threads(1);
  fmt::print("OpenBLAS core: {}; oneDNN ISA: {:#x}\n", openblas_get_corename(), static_cast<int>(dnnl_get_effective_cpu_isa()));
  const std::vector<std::pair<std::string, void (*)(bench::Workload&)>> builders{
      {"W1", bench::build_gpt_tiny}, {"W2", [](bench::Workload& w) { bench::build_encoder(w); }}, {"W3", bench::build_seq2seq_small}};
  for (const auto& [name, build] : builders) {
    if (which.find(name) == std::string::npos) continue;
    bench::Workload w;
    build(w);
    const Trainer trainer(w.graph, w.objective, optim::adamw_factory(0.01, std::nullopt));  // appends the backward pass
    fmt::print("\n{}: pieces of one training step, one thread\n", w.name);
    fmt::print("  {:<6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>6} {:>10} {:>12} {:>9}\n", "layout", "m", "n", "k", "lda", "ldb",
               "count", "oneDNN GF/s", "OpenBLAS GF/s", "routed to");
    double all_onednn = 0, all_openblas = 0, routed = 0, best = 0;
    for (const auto& [p, count] : step_pieces(w.graph)) {
      const PieceTimes t = time_piece(p, rounds);
      const double gflop = 2.0 * static_cast<double>(p.m * p.n * p.k) / 1e9;
      const bool to_onednn =
          kernels::f32_gemm_library(p.transpose_a, p.transpose_b, p.k, p.ldb) == kernels::GemmLibrary::onednn;
      fmt::print("  {}{}     {:>5} {:>5} {:>5} {:>5} {:>5} {:>6} {:>10.1f} {:>12.1f} {:>9}\n", p.transpose_a ? 'T' : 'N',
                 p.transpose_b ? 'T' : 'N', p.m, p.n, p.k, p.lda, p.ldb, count, gflop / t.onednn_s, gflop / t.openblas_s,
                 to_onednn ? "oneDNN" : "OpenBLAS");
      all_onednn += count * t.onednn_s;
      all_openblas += count * t.openblas_s;
      routed += count * (to_onednn ? t.onednn_s : t.openblas_s);
      best += count * std::min(t.onednn_s, t.openblas_s);
    }
    fmt::print("{} step GEMMs on one thread, ms: all oneDNN {:.2f}, all OpenBLAS {:.2f}, routed {:.2f}, best per piece {:.2f}\n",
               w.name, all_onednn * 1e3, all_openblas * 1e3, routed * 1e3, best * 1e3);
  }
}
