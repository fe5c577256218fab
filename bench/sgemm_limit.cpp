// The machine's matrix-product limit that bench/compare measures each workload against: the float32
// GEMM rate of OpenBLAS (cblas_sgemm) and, where it was built with it, of oneDNN's matmul primitive,
// with --threads threads (default 2), on square products and on the three products of a linear layer
// of width 768 over 1024 tokens (forward x W^T, input gradient dY W, weight gradient dY^T X), every
// size between 512 and 1024. Operands are plain row-major matrices, as a framework holds them (no
// library-specific packed layouts). One JSON object per line:
//   {"library": "openblas", "kernel": "Zen", "threads": 2, "m": .., "n": .., "k": .., "layout": "NT", "ms": .., "gflops": ..}
// OpenBLAS's kernel follows OPENBLAS_CORETYPE; "kernel" is the one it reports using.
#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <cblas.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#ifdef XG_HAVE_DNNL
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

#include "timing.hpp"

namespace {

struct Product {
  int m, n, k;
  bool transpose_a, transpose_b;
  std::string layout() const { return fmt::format("{}{}", transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N'); }
  double flops() const { return 2.0 * m * n * k; }
};

const std::vector<Product> kProducts{
    {512, 512, 512, false, false},   {768, 768, 768, false, false},  {1024, 1024, 1024, false, false},
    {1024, 768, 768, false, true},   // a linear layer's forward: x (tokens, in) times W^T, W (out, in)
    {1024, 768, 768, false, false},  // its input gradient: dY (tokens, out) times W
    {768, 768, 1024, true, false},   // its weight gradient: dY^T times x
    {512, 768, 768, false, true},
};

struct Timing {
  int warmup = 5, steps = 20, threads = 2;
};

void print(std::string_view library, std::string_view kernel, const Timing& t, const Product& p, double ms) {
  fmt::print("{{\"library\": \"{}\", \"kernel\": \"{}\", \"threads\": {}, \"m\": {}, \"n\": {}, \"k\": {}, \"layout\": \"{}\", "
             "\"ms\": {:.4f}, \"gflops\": {:.2f}}}\n",
             library, kernel, t.threads, p.m, p.n, p.k, p.layout(), ms, p.flops() / (ms * 1e6));
  std::fflush(stdout);
}

void openblas(const Timing& t) {
  openblas_set_num_threads(t.threads);
  for (const Product& p : kProducts) {
    std::vector<float> a(static_cast<std::size_t>(p.m) * p.k, 0.5f), b(static_cast<std::size_t>(p.k) * p.n, 0.25f);
    std::vector<float> c(static_cast<std::size_t>(p.m) * p.n);
    const double ms = xg::bench::median_ms(t.warmup, t.steps, [&] {
      cblas_sgemm(CblasRowMajor, p.transpose_a ? CblasTrans : CblasNoTrans, p.transpose_b ? CblasTrans : CblasNoTrans, p.m,
                  p.n, p.k, 1.0f, a.data(), p.transpose_a ? p.m : p.k, b.data(), p.transpose_b ? p.k : p.n, 0.0f, c.data(), p.n);
    });
    print("openblas", openblas_get_corename(), t, p, ms);
  }
}

#ifdef XG_HAVE_DNNL
void onednn(const Timing& t) {
  using dnnl::memory;
  omp_set_num_threads(t.threads);  // oneDNN runs on OpenMP here
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  for (const Product& p : kProducts) {
    // Transposed operands are the same row-major buffers read through swapped strides.
    const memory::desc a_md({p.m, p.k}, memory::data_type::f32, p.transpose_a ? memory::format_tag::ba : memory::format_tag::ab);
    const memory::desc b_md({p.k, p.n}, memory::data_type::f32, p.transpose_b ? memory::format_tag::ba : memory::format_tag::ab);
    const memory::desc c_md({p.m, p.n}, memory::data_type::f32, memory::format_tag::ab);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), engine);
    const dnnl::matmul matmul(pd);
    std::vector<float> a(static_cast<std::size_t>(p.m) * p.k, 0.5f), b(static_cast<std::size_t>(p.k) * p.n, 0.25f);
    std::vector<float> c(static_cast<std::size_t>(p.m) * p.n);
    memory a_mem(a_md, engine, a.data()), b_mem(b_md, engine, b.data()), c_mem(c_md, engine, c.data());
    const double ms = xg::bench::median_ms(t.warmup, t.steps, [&] {
      matmul.execute(stream, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
      stream.wait();
    });
    print("onednn", pd.impl_info_str(), t, p, ms);
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::string library = "all";
  Timing t;
  CLI::App app{"The machine's float32 GEMM rate on the benchmark's matrix products (bench/compare's limit).", "sgemm_limit"};
  app.option_defaults()->always_capture_default();
  app.add_option("--library", library, "which library to time")->check(CLI::IsMember({"openblas", "onednn", "all"}));
  app.add_option("--threads", t.threads, "threads of the library")->check(CLI::PositiveNumber);
  app.add_option("--steps", t.steps, "timed calls per product")->check(CLI::PositiveNumber);
  app.add_option("--warmup", t.warmup, "untimed calls first")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  if (library == "openblas" || library == "all") openblas(t);
  if (library == "onednn" || library == "all") {
#ifdef XG_HAVE_DNNL
    onednn(t);
#else
    fmt::print("{{\"library\": \"onednn\", \"available\": false}}\n");
#endif
  }
}
