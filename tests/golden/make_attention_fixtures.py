#!/usr/bin/env python3
"""Writes tests/golden/attention.txt: outputs and gradients of scaled dot-product attention,
softmax(q k^T * scale + bias) @ v, computed by PyTorch (Debian's python3-torch) in float64 with
plain tensor ops and autograd. tests/test_attention.cpp feeds the same q, k, v and bias to xgrad's
fused scaled_dot_product_attention and must agree within 1e-10 relative; it needs no Python.

Run with Debian's interpreter: /usr/bin/python3 tests/golden/make_attention_fixtures.py

The cases cover no bias, a (B, 1, 1, Sk) key-padding bias, a causal + padding bias with a sequence
of length 0 (every key blocked: uniform attention, no NaN), a (Sq, Sk) bias with Sq != Sk and
dv != d, and sizes spanning several query blocks and key tiles of the kernel.

Records (format of core.txt, see make_fixtures.py), for each <case>:
  <case>.input.{q,k,v[,bias]}      inputs
  <case>.scale                     the logits' scale (a 0-d record)
  <case>.output                    the attention's output
  <case>.output_weights            w in the objective sum(output * w)
  <case>.grad_input.{q,k,v[,bias]} d objective / d input
"""
import math

import torch

from make_nn_fixtures import BLOCKED, HERE, Records, causal_bias, key_padding_bias


def attention(q, k, v, bias, scale):
    scores = q @ k.transpose(-1, -2) * scale
    if bias is not None:
        scores = scores + bias
    return torch.softmax(scores, dim=-1) @ v


def record(r, gen, case, batch, heads, q_len, k_len, dim, v_dim, bias):
    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    inputs = {"q": randn(batch, heads, q_len, dim), "k": randn(batch, heads, k_len, dim),
              "v": randn(batch, heads, k_len, v_dim)}
    if bias is not None:
        inputs["bias"] = bias
    for t in inputs.values():
        t.requires_grad_(True)
    scale = 1.0 / math.sqrt(dim)
    output = attention(inputs["q"], inputs["k"], inputs["v"], inputs.get("bias"), scale)
    assert torch.isfinite(output).all(), case
    weights = randn(*output.shape)
    (output * weights).sum().backward()
    for name, t in inputs.items():
        r.add(f"{case}.input.{name}", t)
    r.add(f"{case}.scale", torch.tensor(scale))
    r.add(f"{case}.output", output)
    r.add(f"{case}.output_weights", weights)
    for name, t in inputs.items():
        r.add(f"{case}.grad_input.{name}", t.grad)
    print(f"{case}: output {tuple(output.shape)}")


def main():
    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(20240612)
    r = Records()
    record(r, gen, "plain", 2, 2, 5, 5, 4, 4, None)
    record(r, gen, "padding", 2, 2, 5, 5, 4, 4, key_padding_bias(torch.tensor([5, 2]), 5))
    record(r, gen, "causal_padding_blocked", 2, 2, 5, 5, 4, 4,
           causal_bias(5) + key_padding_bias(torch.tensor([3, 0]), 5))
    record(r, gen, "cross_bias", 2, 3, 3, 7, 4, 5, torch.randn(3, 7, generator=gen))
    record(r, gen, "tiles", 1, 2, 70, 140, 4, 4,
           torch.randn(1, 1, 1, 140, generator=gen) + key_padding_bias(torch.tensor([131]), 140))
    assert BLOCKED == -1e9
    r.write(HERE / "attention.txt")
    print(f"wrote {len(r.lines)} tensors to {HERE / 'attention.txt'}")


if __name__ == "__main__":
    main()
