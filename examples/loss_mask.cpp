// The loss mask (docs/design.md) on the seed's numbers: per-token cross-entropy times a sequence mask,
// averaged over the valid tokens, with its gradients. Every tensor is printed as PyTorch prints it.
#include <fmt/format.h>

#include <xgrad/xgrad.hpp>

using namespace xg;

int main() {
  constexpr std::int64_t B = 2, V = 5, S = 3;
  // The seed's losses come from logits like these (B, V, S), printed to 4 decimals: see
  // tests/golden/make_fixtures.py for how they were made and checked with PyTorch.
  const xt::xarray<float> logits_value{
      {{-2.3104f, -1.7700f, -1.0608f}, {-0.0685f, -0.8840f, -1.2755f}, {-0.6232f, -0.8664f, -1.2956f},
       {1.5236f, 0.3237f, 2.0177f}, {1.1357f, -1.2269f, 0.8295f}},
      {{-0.9529f, -0.0917f, 0.5563f}, {-0.0094f, -1.2177f, -0.8707f}, {-1.1195f, -0.8937f, 1.0410f},
       {0.7646f, 0.1482f, -1.1461f}, {1.8728f, -0.3099f, 0.2402f}}};
  const xt::xarray<std::int32_t> labels_value{{1, 0, 4}, {3, 2, 1}};
  const xt::xarray<std::int32_t> lengths_value{2, 3};

  Graph g;
  const Var logits = g.input("logits", {B, V, S});
  const Var labels = g.input("labels", {B, S}, DType::i32);
  const Var lengths = g.input("lengths", {B}, DType::i32);

  CrossEntropyOptions o;  // class axis 1, as in PyTorch
  o.reduction = Reduction::none;
  const Var loss = cross_entropy(logits, labels, o);   // (B, S)
  const Var mask = sequence_mask(lengths, S, DType::f32);  // 1 for t < length
  const Var masked = loss * mask;
  const Var objective = sum(masked) / sum(mask);
  const std::vector<Var> grads = grad(g, objective, {logits});

  Program p = compile(g, {loss, mask, masked, objective, grads[0]});
  p.run({{logits, logits_value}, {labels, labels_value}, {lengths, lengths_value}});

  fmt::print("logits =\n{}\n\n", Tensor(logits_value));
  fmt::print("labels =\n{}\n\n", Tensor(labels_value));
  fmt::print("lengths =\n{}\n\n", Tensor(lengths_value));
  fmt::print("loss = cross_entropy(logits, labels, reduction=none) =\n{}\n\n", p.get(loss));
  fmt::print("mask = sequence_mask(lengths, {}) =\n{}\n\n", S, p.get(mask));
  fmt::print("masked = loss * mask =\n{}\n\n", p.get(masked));
  fmt::print("objective = sum(masked) / sum(mask) =\n{}\n\n", p.get(objective));
  fmt::print("d objective / d logits =\n{}\n", p.get(grads[0]));
}
