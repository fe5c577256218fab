// Program::run allocates nothing once the Program exists. This executable replaces the global
// allocation functions with counting ones, so it is kept apart from the other suites.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>

#include <xgrad/xgrad.hpp>

namespace {
std::atomic<long> allocations{0};
}  // namespace

static void* counted_allocation(std::size_t size, std::size_t alignment = alignof(std::max_align_t)) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  size = size == 0 ? 1 : size;
  if (alignment <= alignof(std::max_align_t)) return std::malloc(size);
  return std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
}
static void* checked(void* p) {
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* operator new(std::size_t size) { return checked(counted_allocation(size)); }
void* operator new[](std::size_t size) { return checked(counted_allocation(size)); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_allocation(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return counted_allocation(size); }
void* operator new(std::size_t size, std::align_val_t a) { return checked(counted_allocation(size, static_cast<std::size_t>(a))); }
void* operator new[](std::size_t size, std::align_val_t a) { return checked(counted_allocation(size, static_cast<std::size_t>(a))); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

int main() {
  using namespace xg;
  // A small attention block with its loss mask and all parameter gradients.
  Graph g(1);
  const Var tokens = g.input("tokens", {2, 5}, DType::i32);
  const Var labels = g.input("labels", {2, 5}, DType::i32);
  const Var lengths = g.input("lengths", {2}, DType::i32);
  const Var table = g.param("embed", {11, 8}, Init::normal(0.0, 0.1));
  const Var wq = g.param("wq", {8, 8}, Init::normal(0.0, 0.3));
  const Var out = g.param("out", {8, 11}, Init::normal(0.0, 0.3));
  const Var h = embedding(table, tokens);
  const Var q = matmul(h, wq);
  const Var scores = masked_fill(matmul(q, h, false, true) * 0.35, 1.0 - causal_mask(g, 5, DType::f32), -1e9);
  // The fused attention too: its scratch lives in the arena.
  const Var qh = reshape(q, {2, 1, 5, 8}), hh = reshape(h, {2, 1, 5, 8});
  const Var fused = scaled_dot_product_attention(qh, hh, hh, (1.0 - causal_mask(g, 5, DType::f32)) * -1e9, 0.35, 0.1);
  const Var mixed = layer_norm(matmul(dropout(softmax(scores), 0.1), h) + h + reshape(fused, {2, 5, 8}));
  const Var logits = matmul(gelu(mixed), out);
  CrossEntropyOptions o;
  o.class_axis = -1;
  o.reduction = Reduction::mean_over_mask;
  o.mask = sequence_mask(lengths, 5, DType::f32);
  const Var loss = cross_entropy(logits, labels, o);
  std::vector<Var> outputs{loss};
  for (Var gr : grad(g, loss, {table, wq, out})) outputs.push_back(gr);
  Program p = compile(g, outputs);
  p.set_training(true);

  const xt::xarray<std::int32_t> tv = {{1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}};
  const xt::xarray<std::int32_t> lv = {3, 5};
  p.run({{tokens, tv}, {labels, tv}, {lengths, lv}});
  const long before = allocations.load();
  for (int i = 0; i < 20; ++i) p.run({{tokens, tv}, {labels, tv}, {lengths, lv}});
  const long during = allocations.load() - before;
  std::printf("heap allocations in 20 steady-state runs: %ld\n", during);
  if (during != 0) {
    std::printf("1 passed, 1 failed\n");
    return 1;
  }
  std::printf("no_allocation: 1 passed, 0 failed\n");
  return 0;
}
