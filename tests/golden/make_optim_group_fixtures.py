#!/usr/bin/env python3
"""Writes tests/golden/optim_groups.txt: three steps of torch.optim.SGD (momentum) and AdamW over two
parameter groups with different learning rates and weight decay, computed by PyTorch (Debian's
python3-torch) in float64. tests/test_optim.cpp gives xgrad's optimizers the same parameters and
gradients as optim::ParamGroup{..., lr_scale, weight_decay} and must agree within 1e-12.

Run with Debian's interpreter: /usr/bin/python3 tests/golden/make_optim_group_fixtures.py

The learning rate changes every step (a schedule): group 0 gets it as is, group 1 gets it times
LR_SCALE, as xgrad's lr_scale does. Group 0 uses the optimizer's weight decay, group 1 its own.

Records (format of core.txt, see make_fixtures.py):
  groups.p0, groups.q0             the initial parameters (p in group 0, q in group 1)
  groups.gp<k>, groups.gq<k>       their gradients at step k = 0, 1, 2
  groups.lr                        the base learning rate of each step
  groups.<optimizer>.p, .q         the parameters after three steps, for sgd_momentum and adamw
"""
import torch

from make_fixtures import HERE, Records

torch.set_default_dtype(torch.float64)

LR = [0.1, 0.05, 0.02]
LR_SCALE = 0.5
GROUP1_WEIGHT_DECAY = 0.3


def main():
    r = Records()
    gen = torch.Generator().manual_seed(4321)
    p0 = torch.randn(6, generator=gen)
    q0 = torch.randn(2, 3, generator=gen)
    grads = [(torch.randn(6, generator=gen), torch.randn(2, 3, generator=gen)) for _ in LR]
    r.add("groups.p0", p0)
    r.add("groups.q0", q0)
    for k, (gp, gq) in enumerate(grads):
        r.add(f"groups.gp{k}", gp)
        r.add(f"groups.gq{k}", gq)
    r.add("groups.lr", torch.tensor(LR))
    optimizers = {
        "sgd_momentum": lambda groups: torch.optim.SGD(groups, lr=LR[0], momentum=0.9, dampening=0.1, weight_decay=0.01),
        "adamw": lambda groups: torch.optim.AdamW(groups, lr=LR[0], betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    }
    for name, make in optimizers.items():
        p = p0.clone().requires_grad_(True)
        q = q0.clone().requires_grad_(True)
        opt = make([{"params": [p]}, {"params": [q], "weight_decay": GROUP1_WEIGHT_DECAY}])
        for lr, (gp, gq) in zip(LR, grads):
            opt.param_groups[0]["lr"] = lr
            opt.param_groups[1]["lr"] = lr * LR_SCALE
            p.grad = gp.clone()
            q.grad = gq.clone()
            opt.step()
        r.add(f"groups.{name}.p", p)
        r.add(f"groups.{name}.q", q)
    r.write(HERE / "optim_groups.txt")
    print(f"wrote {len(r.lines)} tensors to {HERE / 'optim_groups.txt'}")


if __name__ == "__main__":
    main()
