#!/usr/bin/env python3
"""The PyTorch baseline for bench/README.md's workloads: hand-written modules that compute what
xgrad's graphs compute (W1-W3: post-LN layers, ReLU feed-forward, sinusoidal positions added to a
learned token embedding; W4: GPT-2's pre-LN blocks, tanh GELU, learned positions, tied output
embedding and N(0, 0.02) initialisation; additive attention masks, the loss mask of docs/design.md, AdamW lr
1e-3), timed the same way: median of --steps runs after --warmup (W4: at most SLOW_STEPS after
SLOW_WARMUP), one JSON object per workload. Denormals are flushed to zero (set_flush_denormal).

Run with Debian's interpreter (/usr/bin/python3, python3-torch). Threads: --threads N calls
torch.set_num_threads(N); OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and OPENBLAS_CORETYPE come from the
environment. --workload takes a comma-separated list of prefixes (W1,W4) or all.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BLOCKED = -1e9
SLOW = ("W4",)  # workloads whose step takes seconds: few steps (as in xgrad_bench)
SLOW_WARMUP, SLOW_STEPS = 1, 3


def sinusoids(max_len, dim):
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    i = torch.arange(dim)
    freq = torch.pow(10000.0, -(i - i % 2).to(torch.float64) / dim)
    angle = pos * freq
    return torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle)).to(torch.float32)


def padding_bias(lengths, seq):
    keep = (torch.arange(seq)[None, :] < lengths[:, None]).float()
    return ((1.0 - keep) * BLOCKED)[:, None, None, :]


def causal_bias(seq):
    return (1.0 - torch.tril(torch.ones(seq, seq))) * BLOCKED


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, kv, bias):
        b, sq, d = x.shape
        sk, h = kv.shape[1], self.heads
        q = self.q_proj(x).view(b, sq, h, d // h).transpose(1, 2)
        k = self.k_proj(kv).view(b, sk, h, d // h).transpose(1, 2)
        v = self.v_proj(kv).view(b, sk, h, d // h).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // h) + bias
        ctx = torch.softmax(scores, -1) @ v
        return self.out_proj(ctx.transpose(1, 2).reshape(b, sq, d))


class EncoderLayer(nn.Module):
    def __init__(self, d, heads, d_ff):
        super().__init__()
        self.self_attn = Attention(d, heads)
        self.linear1, self.linear2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x, bias):
        x = self.norm1(x + self.self_attn(x, x, bias))
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class DecoderLayer(nn.Module):
    def __init__(self, d, heads, d_ff):
        super().__init__()
        self.self_attn, self.cross_attn = Attention(d, heads), Attention(d, heads)
        self.linear1, self.linear2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x, memory, self_bias, memory_bias):
        x = self.norm1(x + self.self_attn(x, x, self_bias))
        x = self.norm2(x + self.cross_attn(x, memory, memory_bias))
        return self.norm3(x + self.linear2(F.relu(self.linear1(x))))


def masked_loss(logits, labels, lengths):
    loss = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    mask = (torch.arange(labels.shape[1])[None, :] < lengths[:, None]).float()
    return (loss * mask).sum() / mask.sum()


class GptTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok_embed = nn.Embedding(128, 128)
        self.register_buffer("pos", sinusoids(64, 128))
        self.layers = nn.ModuleList(EncoderLayer(128, 4, 512) for _ in range(2))
        self.lm_head = nn.Linear(128, 128, bias=False)

    def forward(self, tokens, lengths, labels):
        bias = causal_bias(tokens.shape[1]) + padding_bias(lengths, tokens.shape[1])
        x = self.tok_embed(tokens) + self.pos[: tokens.shape[1]]
        for layer in self.layers:
            x = layer(x, bias)
        return masked_loss(self.lm_head(x), labels, lengths)


class Encoder256(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = EncoderLayer(256, 8, 1024)

    def forward(self, x, lengths):
        return self.layer(x, padding_bias(lengths, x.shape[1])).square().mean()


class Seq2SeqSmall(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_embed, self.tgt_embed = nn.Embedding(128, 128), nn.Embedding(128, 128)
        self.register_buffer("pos", sinusoids(48, 128))
        self.encoder = nn.ModuleList(EncoderLayer(128, 4, 512) for _ in range(2))
        self.decoder = nn.ModuleList(DecoderLayer(128, 4, 512) for _ in range(2))
        self.output_proj = nn.Linear(128, 128)

    def forward(self, src, src_lengths, tgt, tgt_lengths, labels):
        s, t = src.shape[1], tgt.shape[1]
        src_bias = padding_bias(src_lengths, s)
        memory = self.src_embed(src) + self.pos[:s]
        for layer in self.encoder:
            memory = layer(memory, src_bias)
        x = self.tgt_embed(tgt) + self.pos[:t]
        tgt_bias = causal_bias(t) + padding_bias(tgt_lengths, t)
        for layer in self.decoder:
            x = layer(x, memory, tgt_bias, src_bias)
        return masked_loss(self.output_proj(x), labels, tgt_lengths)


class PreLNLayer(EncoderLayer):
    """GPT-2's block: EncoderLayer's parameters, x + attn(LN(x)), then x + mlp(LN(x)) with the tanh GELU."""

    def forward(self, x, bias):
        h = self.norm1(x)
        x = x + self.self_attn(h, h, bias)
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    """GPT-2 124M: vocab 50257, 1024 learned positions, 12 layers of width 768, 12 heads, d_ff 3072,
    a final LayerNorm and logits through the token embedding; weights N(0, 0.02), biases zero."""

    def __init__(self):
        super().__init__()
        self.tok_embed, self.pos_embed = nn.Embedding(50257, 768), nn.Embedding(1024, 768)
        self.layers = nn.ModuleList(PreLNLayer(768, 12, 3072) for _ in range(12))
        self.norm = nn.LayerNorm(768)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, tokens, lengths, labels):
        t = tokens.shape[1]
        bias = causal_bias(t) + padding_bias(lengths, t)
        x = self.tok_embed(tokens) + self.pos_embed.weight[:t]
        for layer in self.layers:
            x = layer(x, bias)
        return masked_loss(F.linear(self.norm(x), self.tok_embed.weight), labels, lengths)


def workloads(scaling_seq):
    g = torch.Generator().manual_seed(0)
    ints = lambda low, high, *shape: torch.randint(low, high + 1, shape, generator=g)
    if scaling_seq:
        batch = max(1, 2048 // scaling_seq)
        yield (f"encoder-256 S={scaling_seq}", Encoder256(),
               (torch.randn(batch, scaling_seq, 256, generator=g), ints(scaling_seq // 4, scaling_seq, batch)))
        return
    yield "W1 gpt-tiny", GptTiny(), (ints(0, 127, 8, 64), ints(16, 64, 8), ints(0, 127, 8, 64))
    yield "W2 encoder-256", Encoder256(), (torch.randn(16, 128, 256, generator=g), ints(32, 128, 16))
    yield "W3 seq2seq-small", Seq2SeqSmall(), (ints(0, 127, 8, 48), ints(8, 48, 8), ints(0, 127, 8, 48), ints(8, 48, 8),
                                               ints(0, 127, 8, 48))
    for seq in (64, 256):  # full-length sequences, as in GPT-2's pre-training
        yield f"W4 gpt2-124m T{seq}", Gpt2, (ints(0, 50256, 4, seq), torch.full((4,), seq), ints(0, 50256, 4, seq))


def median_ms(warmup, steps, f):
    for _ in range(warmup):
        f()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workload", default="all")
    parser.add_argument("--scaling-seq", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    selected = args.workload.split(",")
    for name, model, inputs in workloads(args.scaling_seq):
        if args.workload != "all" and not any(name.startswith(w) for w in selected):
            continue
        if isinstance(model, type):  # built only when selected: W4 has 124M parameters
            model = model()
        warmup, steps = (min(args.warmup, SLOW_WARMUP), min(args.steps, SLOW_STEPS)) if name.startswith(SLOW) else \
            (args.warmup, args.steps)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)

        def forward():
            with torch.no_grad():
                model(*inputs)

        def step():
            opt.zero_grad(set_to_none=True)
            model(*inputs).backward()
            opt.step()

        result = {"workload": name, "forward_ms": median_ms(warmup, steps, forward),
                  "step_ms": median_ms(warmup, steps, step), "threads": args.threads}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
