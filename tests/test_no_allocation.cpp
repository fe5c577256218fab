// Steady-state runs allocate nothing: Program::run, Trainer::step (optimizer and clipping included,
// with or without gradient accumulation over micro-batches) and a generated model's train_step, at
// sizes where the pool splits products, rows and heads. This executable replaces every allocation
// function (operator new, malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign) with
// counting ones, so it is kept apart from the suites.
//
// One exception is measured, not hidden: oneDNN's sgemm takes a packing buffer from the heap on each
// call and frees it before returning. With that backend, f32 steps must allocate the same number of
// blocks every step and free every one of them within the step; f64 steps (CBLAS) and builds with
// -Dmatmul=cblas must allocate nothing at all.
#include <malloc.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "graph/registry.hpp"
#include "test_decoder_lm_f64.hpp"
#include "test_decoder_lm_threads.hpp"
#include "xgrad/xgrad.hpp"

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}

namespace {
std::atomic<long> allocations{0}, frees{0};
}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(count, n);
}
void* realloc(void* p, std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
int posix_memalign(void** p, std::size_t alignment, std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  *p = __libc_memalign(alignment, n);
  return *p == nullptr ? 12 /* ENOMEM */ : 0;
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, n);
}
void* memalign(std::size_t alignment, std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, n);
}
void free(void* p) {
  if (p != nullptr) frees.fetch_add(1, std::memory_order_relaxed);
  __libc_free(p);
}
}

// operator new and delete go through the counted malloc and free.
void* operator new(std::size_t size) {
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, std::align_val_t a) {
  void* p = nullptr;
  if (posix_memalign(&p, static_cast<std::size_t>(a), size == 0 ? 1 : size) == 0) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t a) { return operator new(size, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

int passed = 0, failed = 0;

/// Runs `step` 3 times to reach the steady state, then 10 times counting; `f64`: nothing may be
/// allocated; f32: see the file comment.
template <class Step>
void expect_no_allocation(const std::string& what, bool f64, Step&& step) {
  for (int i = 0; i < 3; ++i) step();
  std::vector<long> per_step;
  per_step.reserve(10);  // no allocation of ours between the counts
  long unfreed = 0;
  for (int i = 0; i < 10; ++i) {
    const long a0 = allocations.load(), f0 = frees.load();
    step();
    const long allocated = allocations.load() - a0, freed = frees.load() - f0;
    per_step.push_back(allocated);
    unfreed += allocated - freed;
  }
#ifdef XG_ONEDNN
  const bool exact = f64;
#else
  const bool exact = true;
#endif
  const bool steady = std::all_of(per_step.begin(), per_step.end(), [&](long n) { return n == per_step[0]; });
  const bool ok = exact ? per_step[0] == 0 && steady : steady && unfreed == 0;
  fmt::print("{}: {} allocations per step ({}), {} left unfreed: {}\n", what, per_step[0],
             exact ? "must be 0" : "oneDNN sgemm packing, must be steady and freed", unfreed, ok ? "ok" : "FAILED");
  (ok ? passed : failed) += 1;
}

/// A decoder LM large enough that products are cut into pieces and heads spread over the pool.
void trainer_steps(xg::DType dtype) {
  using namespace xg;
  const models::ModelRecipe recipe = models::parse_recipe(
      "decoder_lm", fmt::format("dtype={} vocab=64 d_model=128 heads=4 d_ff=512 layers=2 batch=8 seq=64 dropout=0.1",
                                dtype == DType::f64 ? "f64" : "f32"));
  Graph g(1, recipe.float_type);
  const models::BuiltModel built = models::build_model(g, recipe);
  Trainer trainer(g, built.objective, optim::adamw_factory(/*weight_decay=*/0.01, /*clip_norm=*/1.0),
                  {.weight = built.weight});
  std::mt19937 rng(2);
  const models::RandomInputs inputs(recipe, g, rng);
  expect_no_allocation(fmt::format("Trainer::step, {} decoder LM, {} threads", dtype, trainer.program().threads()),
                       dtype == DType::f64, [&] { trainer.step(inputs.feeds(), 1e-3); });
  // Gradient accumulation: its buffers are allocated by the first accumulating step only.
  const std::vector<std::span<const Feed>> micro_batches{inputs.feeds(), inputs.feeds()};
  expect_no_allocation(fmt::format("Trainer::step over 2 micro-batches, {} decoder LM", dtype), dtype == DType::f64,
                       [&] { trainer.step(micro_batches, 1e-3); });
}

template <class Model>
void generated_steps() {
  using namespace xg;
  const models::ModelRecipe recipe = models::parse_recipe(
      std::string_view(Model::description).substr(0, std::string_view(Model::description).find(' ')),
      std::string_view(Model::description).substr(std::string_view(Model::description).find(' ') + 1));
  Graph g(5, recipe.float_type);
  models::build_model(g, recipe);
  auto model = std::make_unique<Model>(5);
  auto inputs = std::make_unique<typename Model::Inputs>();
  std::mt19937 rng(3);
  const models::RandomInputs drawn(recipe, g, inputs->named(), rng);
  expect_no_allocation(fmt::format("generated {}::train_step", Model::description), recipe.float_type == DType::f64,
                       [&] { model->train_step(*inputs, 1e-3); });
}

}  // namespace

int main() {
  trainer_steps(xg::DType::f32);
  trainer_steps(xg::DType::f64);
  generated_steps<xg::generated::TestDecoderLMThreads>();
  generated_steps<xg::generated::TestDecoderLMF64>();
  fmt::print("no_allocation: {} passed, {} failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
