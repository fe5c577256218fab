#!/usr/bin/env python3
"""Writes tests/golden/core.txt: forward values and gradients computed by PyTorch (Debian's
python3-torch), read back by the C++ suite, which itself needs no Python.

Run with Debian's interpreter: /usr/bin/python3 tests/golden/make_fixtures.py

Record format, one tensor per line:  name dtype rank d0 .. d(rank-1) v0 v1 ...
(dtype is f64 or i32; values in row-major order, printed with 17 significant digits).
"""
import pathlib

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
HERE = pathlib.Path(__file__).resolve().parent


class Records:
    def __init__(self):
        self.lines = []

    def add(self, name, t):
        t = t.detach()
        dtype = "i32" if t.dtype in (torch.int32, torch.int64) else "f64"
        values = t.reshape(-1).tolist()
        text = " ".join(str(int(v)) if dtype == "i32" else repr(float(v)) for v in values)
        self.lines.append(f"{name} {dtype} {t.dim()} {' '.join(str(d) for d in t.shape)} {text}".replace("  ", " "))

    def write(self, path):
        path.write_text("\n".join(self.lines) + "\n")


def seed_logits():
    """The loss-mask example's logits: docs/design.md gives the seed's per-token losses but not its logits,
    so the logits are made here: random logits (4 decimals) whose label entries are then solved for
    so that PyTorch's cross-entropy reproduces those losses within 2e-4."""
    target = torch.tensor([[2.2954, 2.7556, 1.5419], [1.5731, 2.1495, 2.7554]])
    gen = torch.Generator().manual_seed(0)
    logits = torch.round(torch.randn(2, 5, 3, generator=gen) * 1e4) / 1e4
    labels = torch.tensor([[1, 0, 4], [3, 2, 1]])
    for b in range(2):
        for s in range(3):
            y = labels[b, s]
            others = torch.cat([logits[b, :y, s], logits[b, y + 1:, s]])
            rest = torch.exp(others).sum()
            p = torch.exp(-target[b, s])
            logits[b, y, s] = torch.round(torch.log(p * rest / (1 - p)) * 1e4) / 1e4
    loss = F.cross_entropy(logits, labels, reduction="none")
    assert (loss - target).abs().max() < 2e-4, loss
    return logits, labels


def main():
    r = Records()
    gen = torch.Generator().manual_seed(1234)

    # softmax / log_softmax over an inner and the last axis
    x = torch.randn(2, 3, 4, generator=gen) * 2
    r.add("softmax.x", x)
    r.add("softmax.axis1", torch.softmax(x, 1))
    r.add("softmax.axis-1", torch.softmax(x, -1))
    r.add("log_softmax.axis1", torch.log_softmax(x, 1))
    r.add("log_softmax.axis-1", torch.log_softmax(x, -1))

    # layer_norm over the last axis (with affine) and the last two (without)
    x = torch.randn(2, 3, 4, generator=gen) * 3 + 1
    gamma = torch.randn(4, generator=gen)
    beta = torch.randn(4, generator=gen)
    r.add("layer_norm.x", x)
    r.add("layer_norm.gamma", gamma)
    r.add("layer_norm.beta", beta)
    r.add("layer_norm.affine", F.layer_norm(x, (4,), gamma, beta, eps=1e-5))
    r.add("layer_norm.last2", F.layer_norm(x, (3, 4), eps=1e-3))

    # gelu, exact and tanh form
    x = torch.linspace(-4, 4, 17)
    r.add("gelu.x", x)
    r.add("gelu.erf", F.gelu(x))
    r.add("gelu.tanh", F.gelu(x, approximate="tanh"))

    # cross_entropy: reductions, ignore_index, label smoothing, class axis -1
    logits = torch.randn(3, 5, 4, generator=gen)
    labels = torch.tensor([[0, 4, 2, 1], [3, 3, -100, 0], [1, -100, 4, 2]])
    r.add("ce.logits", logits)
    r.add("ce.labels", labels)
    r.add("ce.none", F.cross_entropy(logits, labels, reduction="none"))
    r.add("ce.sum", F.cross_entropy(logits, labels, reduction="sum"))
    r.add("ce.mean", F.cross_entropy(logits, labels, reduction="mean"))
    r.add("ce.smooth.none", F.cross_entropy(logits, labels, reduction="none", label_smoothing=0.1))
    r.add("ce.smooth.mean", F.cross_entropy(logits, labels, reduction="mean", label_smoothing=0.1))
    relabelled = labels.clone()
    relabelled[relabelled == -100] = 3
    r.add("ce.ignore3.labels", relabelled)
    r.add("ce.ignore3.mean", F.cross_entropy(logits, relabelled, ignore_index=3))
    last = logits.permute(0, 2, 1).contiguous()
    r.add("ce.last.logits", last)
    r.add("ce.last.none", F.cross_entropy(last.reshape(-1, 5), labels.reshape(-1), reduction="none").reshape(3, 4))

    # the loss mask (docs/design.md), with gradients to the logits and to the mask
    logits, labels = seed_logits()
    lengths = torch.tensor([2, 3])
    logits.requires_grad_(True)
    loss = F.cross_entropy(logits, labels, reduction="none")
    mask = (torch.arange(3)[None, :] < lengths[:, None]).to(torch.float64).requires_grad_(True)
    objective = (loss * mask).sum() / mask.sum()
    objective.backward()
    r.add("loss_mask.logits", logits)
    r.add("loss_mask.labels", labels)
    r.add("loss_mask.lengths", lengths)
    r.add("loss_mask.loss", loss)
    r.add("loss_mask.mask", mask)
    r.add("loss_mask.objective", objective)
    r.add("loss_mask.grad_logits", logits.grad)
    r.add("loss_mask.grad_mask", mask.grad)

    # optimizers: three steps from one parameter with fixed gradients; clipping before plain SGD
    p0 = torch.randn(6, generator=gen)
    steps = [torch.randn(6, generator=gen) for _ in range(3)]
    r.add("optim.param", p0)
    for k, g in enumerate(steps):
        r.add(f"optim.grad{k}", g)
    optimizers = {
        "sgd_momentum": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
        "sgd_nesterov": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True),
        "adam": lambda p: torch.optim.Adam([p], lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        "adamw": lambda p: torch.optim.AdamW([p], lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    }
    for name, make in optimizers.items():
        p = p0.clone().requires_grad_(True)
        opt = make(p)
        for g in steps:
            p.grad = g.clone()
            opt.step()
        r.add(f"optim.{name}", p)
    p = p0.clone().requires_grad_(True)
    p.grad = steps[0].clone()
    norm = torch.nn.utils.clip_grad_norm_([p], max_norm=0.5)
    torch.optim.SGD([p], lr=1.0).step()
    r.add("optim.clip.norm", norm)
    r.add("optim.clip.sgd", p)

    r.write(HERE / "core.txt")
    print(f"wrote {len(r.lines)} tensors to {HERE / 'core.txt'}")
    print("loss-mask logits:\n", logits.detach().to(torch.float32))


if __name__ == "__main__":
    main()
