#!/usr/bin/env python3
"""Writes tests/golden/nn.txt: outputs and gradients of xgrad's layers (xgrad/nn) and of one small
model per family (graph/), computed by PyTorch (Debian's python3-torch) in float64. The C++ suite
(tests/test_parity.cpp) rebuilds the same graphs with these weights and inputs and must agree within
1e-5 relative; it reads this file and needs no Python.

Run with Debian's interpreter: /usr/bin/python3 tests/golden/make_nn_fixtures.py

The modules below are written from xgrad's documented semantics with ordinary PyTorch pieces
(nn.Linear, nn.LayerNorm, nn.Embedding, softmax, cross_entropy); no xgrad code is involved. The
attention and the Transformer layers are also checked here against PyTorch's own
nn.MultiheadAttention / nn.TransformerEncoderLayer / nn.TransformerDecoderLayer before anything is
written, so that the fixtures do not merely restate this file's reading of xgrad.

Records, one tensor per line, in the format of core.txt (see make_fixtures.py):
  <case>.param.<xgrad parameter name>   parameter values (every parameter of the case's graph)
  <case>.input.<xgrad input name>       inputs (float ones get gradients, i32 ones do not)
  <case>.output                         the layer's output, or the model's logits
  <case>.output_weights                 layers only: w in the objective sum(output * w)
  <case>.objective                      the scalar that is differentiated
  <case>.grad.<parameter name>          d objective / d parameter
  <case>.grad_input.<input name>        d objective / d float input
Masks are additive biases of -1e9 (xgrad's nn::kBlocked); all dropout is off (xgrad's evaluation mode).
"""
import math
import pathlib

import torch
import torch.nn.functional as F
from torch import nn

torch.set_default_dtype(torch.float64)
HERE = pathlib.Path(__file__).resolve().parent
BLOCKED = -1e9

# Sizes shared by the cases.
B, S, D, HEADS, D_FF = 2, 5, 8, 2, 12
MAX_LEN = 6


class Records:
    def __init__(self):
        self.lines = []

    def add(self, name, t):
        t = torch.as_tensor(t).detach()
        dtype = "i32" if t.dtype in (torch.int32, torch.int64) else "f64"
        values = t.reshape(-1).tolist()
        text = " ".join(str(int(v)) if dtype == "i32" else repr(float(v)) for v in values)
        dims = " ".join(str(d) for d in t.shape)
        self.lines.append(" ".join(part for part in (name, dtype, str(t.dim()), dims, text) if part))

    def write(self, path):
        path.write_text("\n".join(self.lines) + "\n")


# ----------------------------------------------------------------------------------------------
# Masks and positions, as xgrad defines them


def key_padding_bias(lengths, seq_len):
    """(B, 1, 1, S): 0 for key positions t < length, BLOCKED after them."""
    padded = torch.arange(seq_len)[None, :] >= lengths[:, None]
    return (padded.to(torch.float64) * BLOCKED)[:, None, None, :]


def causal_bias(seq_len):
    """(S, S): BLOCKED above the diagonal."""
    later = torch.triu(torch.ones(seq_len, seq_len), diagonal=1)
    return later * BLOCKED


def sequence_mask(lengths, seq_len):
    return (torch.arange(seq_len)[None, :] < lengths[:, None]).to(torch.float64)


def sinusoidal_table(max_len, dim):
    """PE(p, 2i) = sin(p / 10000^(2i/dim)), PE(p, 2i+1) = cos(p / 10000^(2i/dim))."""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


# ----------------------------------------------------------------------------------------------
# Layers, with xgrad's parameter names


def activation_fn(name):
    return {"relu": F.relu, "gelu": F.gelu}[name]  # F.gelu is the exact (erf) form, as xgrad's default


def feed_forward(linear1, linear2, activation, x):
    return linear2(activation_fn(activation)(linear1(x)))


class FeedForward(nn.Module):
    """xgrad's nn::feed_forward: `{name}.linear1`, `{name}.linear2`."""

    def __init__(self, d_model, d_ff, activation):
        super().__init__()
        self.activation = activation
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return feed_forward(self.linear1, self.linear2, self.activation, x)


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections and an additive bias."""

    def __init__(self, d_model, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def split(self, x):
        batch, seq, width = x.shape
        return x.reshape(batch, seq, self.heads, width // self.heads).transpose(1, 2)

    def forward(self, query, key_value, bias=None):
        q, k, v = self.split(self.q_proj(query)), self.split(self.k_proj(key_value)), self.split(self.v_proj(key_value))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if bias is not None:
            scores = scores + bias
        heads = torch.softmax(scores, dim=-1) @ v  # (B, heads, Sq, dh)
        batch, _, seq, _ = heads.shape
        return self.out_proj(heads.transpose(1, 2).reshape(batch, seq, -1))


def residual(x, norm, norm_style, sublayer):
    if norm_style == "pre":
        return x + sublayer(norm(x))
    return norm(x + sublayer(x))


class EncoderLayer(nn.Module):
    def __init__(self, norm_style, activation):
        super().__init__()
        self.norm_style, self.activation = norm_style, activation
        self.self_attn = Attention(D, HEADS)
        self.linear1 = nn.Linear(D, D_FF)
        self.linear2 = nn.Linear(D_FF, D)
        self.norm1 = nn.LayerNorm(D, eps=1e-5)
        self.norm2 = nn.LayerNorm(D, eps=1e-5)

    def forward(self, x, bias):
        x = residual(x, self.norm1, self.norm_style, lambda h: self.self_attn(h, h, bias))
        return residual(x, self.norm2, self.norm_style,
                        lambda h: feed_forward(self.linear1, self.linear2, self.activation, h))


class DecoderLayer(nn.Module):
    def __init__(self, norm_style, activation):
        super().__init__()
        self.norm_style, self.activation = norm_style, activation
        self.self_attn = Attention(D, HEADS)
        self.cross_attn = Attention(D, HEADS)
        self.linear1 = nn.Linear(D, D_FF)
        self.linear2 = nn.Linear(D_FF, D)
        self.norm1 = nn.LayerNorm(D, eps=1e-5)
        self.norm2 = nn.LayerNorm(D, eps=1e-5)
        self.norm3 = nn.LayerNorm(D, eps=1e-5)

    def forward(self, x, memory, self_bias, memory_bias):
        x = residual(x, self.norm1, self.norm_style, lambda h: self.self_attn(h, h, self_bias))
        x = residual(x, self.norm2, self.norm_style, lambda h: self.cross_attn(h, memory, memory_bias))
        return residual(x, self.norm3, self.norm_style,
                        lambda h: feed_forward(self.linear1, self.linear2, self.activation, h))


class Stack(nn.Module):
    """Layers `0`, `1`, ... and, with pre-LN, a final LayerNorm `norm` (xgrad's nn::encoder/decoder)."""

    def __init__(self, make_layer, layers, final_norm):
        super().__init__()
        for i in range(layers):
            self.add_module(str(i), make_layer())
        self.count = layers
        self.norm = nn.LayerNorm(D, eps=1e-5) if final_norm else None

    def forward(self, x, *args):
        for i in range(self.count):
            x = getattr(self, str(i))(x, *args)
        return self.norm(x) if self.norm is not None else x


def named(name, module):
    """A container whose only child is `module` under `name`, so parameter names get xgrad's prefix."""
    holder = nn.Module()
    holder.add_module(name, module)
    return holder


# ----------------------------------------------------------------------------------------------
# Models (graph/*.cpp)


class Embedder(nn.Module):
    """graph/model_config.cpp's embed_tokens: table(tokens) * sqrt(d_model) + positions."""

    def __init__(self, vocab, learned_positions):
        super().__init__()
        self.table = nn.Embedding(vocab, D)
        self.positions = nn.Embedding(MAX_LEN, D) if learned_positions else None

    def forward(self, tokens):
        seq = tokens.shape[1]
        table = self.positions.weight if self.positions is not None else sinusoidal_table(MAX_LEN, D)
        return self.table(tokens) * math.sqrt(D) + table[:seq]


def stack(layers, norm_style, activation, decoder=False):
    layer = DecoderLayer if decoder else EncoderLayer
    return Stack(lambda: layer(norm_style, activation), layers, final_norm=norm_style == "pre")


class EncoderClassifier(nn.Module):
    def __init__(self, vocab, classes, layers, norm_style, activation):
        super().__init__()
        self.tok_embed = Embedder(vocab, learned_positions=False)
        self.encoder = stack(layers, norm_style, activation)
        self.pooler = nn.Linear(D, D)
        self.classifier = nn.Linear(D, classes)

    def forward(self, tokens, lengths, labels):
        hidden = self.encoder(self.tok_embed(tokens), key_padding_bias(lengths, tokens.shape[1]))
        keep = sequence_mask(lengths, tokens.shape[1])[:, :, None]
        pooled = (hidden * keep).sum(1) / keep.sum(1)
        logits = self.classifier(torch.tanh(self.pooler(pooled)))
        return logits, F.cross_entropy(logits, labels.long(), reduction="none").mean()


def masked_token_loss(logits, labels, lengths):
    """The loss mask (docs/design.md): sum(cross_entropy * mask) / sum(mask) over (B, S, V) logits."""
    batch, seq, vocab = logits.shape
    loss = F.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1).long(), reduction="none").reshape(batch, seq)
    mask = sequence_mask(lengths, seq)
    return (loss * mask).sum() / mask.sum()


class DecoderLM(nn.Module):
    def __init__(self, vocab, layers, norm_style, activation, tied, learned_positions):
        super().__init__()
        self.tied = tied
        self.tok_embed = Embedder(vocab, learned_positions)
        self.layers = stack(layers, norm_style, activation)
        self.lm_head = None if tied else nn.Linear(D, vocab, bias=False)

    def forward(self, tokens, lengths, labels):
        seq = tokens.shape[1]
        bias = causal_bias(seq) + key_padding_bias(lengths, seq)
        hidden = self.layers(self.tok_embed(tokens), bias)
        logits = hidden @ self.tok_embed.table.weight.T if self.tied else self.lm_head(hidden)
        return logits, masked_token_loss(logits, labels, lengths)


class Seq2Seq(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, encoder_layers, decoder_layers, norm_style, activation):
        super().__init__()
        self.src_embed = Embedder(src_vocab, learned_positions=False)
        self.tgt_embed = Embedder(tgt_vocab, learned_positions=False)
        self.encoder = stack(encoder_layers, norm_style, activation)
        self.decoder = stack(decoder_layers, norm_style, activation, decoder=True)
        self.output_proj = nn.Linear(D, tgt_vocab)

    def forward(self, src_tokens, src_lengths, tgt_tokens, tgt_lengths, labels):
        src_padding = key_padding_bias(src_lengths, src_tokens.shape[1])
        tgt_len = tgt_tokens.shape[1]
        tgt_self = causal_bias(tgt_len) + key_padding_bias(tgt_lengths, tgt_len)
        memory = self.encoder(self.src_embed(src_tokens), src_padding)
        hidden = self.decoder(self.tgt_embed(tgt_tokens), memory, tgt_self, src_padding)
        logits = self.output_proj(hidden)
        return logits, masked_token_loss(logits, labels, tgt_lengths)


def xgrad_parameter_names(module):
    """named_parameters() with xgrad's names: an Embedder's table is `{name}.weight`, its learned
    positions `{name}_pos.weight` (graph/model_config.cpp)."""
    out = {}
    for name, p in module.named_parameters():
        name = name.replace(".table.weight", ".weight").replace(".positions.weight", "_pos.weight")
        out[name] = p
    return out


# ----------------------------------------------------------------------------------------------
# Weights, inputs, and one case end to end


def fill_parameters(module, gen):
    """Ordinary random values: Linear weights N(0, 1/in), biases U(-0.5, 0.5); embeddings N(0, 1);
    LayerNorm weight 1 + N(0, 0.3^2) and bias N(0, 0.2^2), so that the affine part is exercised."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(m.in_features))
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=gen) - 0.5)
            elif isinstance(m, nn.Embedding):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen))
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))


def record_case(r, case, module, inputs, forward, gen):
    """Runs forward(**inputs) -> (output, objective or None), differentiates the objective (or
    sum(output * w) with fixed random w) and records everything under `case`."""
    fill_parameters(module, gen)
    for t in inputs.values():
        if t.is_floating_point():
            t.requires_grad_(True)
    output, objective = forward(**inputs)
    if objective is None:
        weights = torch.randn(output.shape, generator=gen)
        r.add(f"{case}.output_weights", weights)
        objective = (output * weights).sum()
    module.zero_grad()
    objective.backward()

    params = xgrad_parameter_names(module)
    for name, p in params.items():
        r.add(f"{case}.param.{name}", p)
    for name, t in inputs.items():
        r.add(f"{case}.input.{name}", t)
    r.add(f"{case}.output", output)
    r.add(f"{case}.objective", objective)
    for name, p in params.items():
        r.add(f"{case}.grad.{name}", p.grad if p.grad is not None else torch.zeros_like(p))
    for name, t in inputs.items():
        if t.is_floating_point():
            r.add(f"{case}.grad_input.{name}", t.grad)
    print(f"{case}: {len(params)} parameters, objective {objective.item():.6f}")


def tokens(gen, batch, seq, vocab):
    return torch.randint(0, vocab, (batch, seq), generator=gen, dtype=torch.int32)


def ints(*values):
    return torch.tensor(values, dtype=torch.int32)


def layer_cases(r, gen):
    def randn(*shape):
        return torch.randn(shape, generator=gen)

    m = named("fc", nn.Linear(5, 3))
    record_case(r, "linear", m, {"x": randn(B, S, 5)}, lambda x: (m.fc(x), None), gen)
    m = named("fc", nn.Linear(5, 3, bias=False))
    record_case(r, "linear_nobias", m, {"x": randn(B, S, 5)}, lambda x: (m.fc(x), None), gen)

    m = named("embed", nn.Embedding(7, D))
    ids = torch.tensor([[0, 4, 4, 6, 1], [2, 1, 0, 0, 3]], dtype=torch.int32)
    record_case(r, "embedding", m, {"tokens": ids}, lambda tokens: (m.embed(tokens) * math.sqrt(D), None), gen)

    r.add("positions.output", sinusoidal_table(MAX_LEN, D))

    m = named("norm", nn.LayerNorm(D, eps=1e-5))
    record_case(r, "layer_norm", m, {"x": randn(B, S, D) * 2 + 0.5}, lambda x: (m.norm(x), None), gen)

    for activation in ("relu", "gelu"):
        m = named("ff", FeedForward(D, D_FF, activation))
        record_case(r, f"feed_forward_{activation}", m, {"x": randn(B, S, D)}, lambda x: (m.ff(x), None), gen)

    m = named("attn", Attention(D, HEADS))
    record_case(r, "self_attention", m, {"x": randn(B, S, D), "lengths": ints(5, 3)},
                lambda x, lengths: (m.attn(x, x, key_padding_bias(lengths, S)), None), gen)
    record_case(r, "causal_self_attention", m, {"x": randn(B, S, D), "lengths": ints(4, 2)},
                lambda x, lengths: (m.attn(x, x, causal_bias(S) + key_padding_bias(lengths, S)), None), gen)
    record_case(r, "cross_attention", m,
                {"x": randn(B, 4, D), "memory": randn(B, S, D), "memory_lengths": ints(3, 5)},
                lambda x, memory, memory_lengths: (m.attn(x, memory, key_padding_bias(memory_lengths, S)), None), gen)

    for norm_style, activation in (("post", "relu"), ("pre", "gelu")):
        m = named("enc", EncoderLayer(norm_style, activation))
        record_case(r, f"encoder_layer_{norm_style}", m, {"x": randn(B, S, D), "lengths": ints(5, 3)},
                    lambda x, lengths: (m.enc(x, key_padding_bias(lengths, S)), None), gen)
        cross_check_encoder_layer(m.enc, randn(B, S, D), ints(5, 3))

    for norm_style, activation in (("post", "gelu"), ("pre", "relu")):
        m = named("dec", DecoderLayer(norm_style, activation))

        def decoder_forward(x, memory, lengths, memory_lengths):
            self_bias = causal_bias(4) + key_padding_bias(lengths, 4)
            return m.dec(x, memory, self_bias, key_padding_bias(memory_lengths, S)), None

        record_case(r, f"decoder_layer_{norm_style}", m,
                    {"x": randn(B, 4, D), "memory": randn(B, S, D), "lengths": ints(4, 2),
                     "memory_lengths": ints(3, 5)},
                    decoder_forward, gen)
        cross_check_decoder_layer(m.dec, randn(B, 4, D), randn(B, S, D), ints(4, 2), ints(3, 5))


def model_cases(r, gen):
    m = EncoderClassifier(vocab=9, classes=3, layers=2, norm_style="post", activation="relu")
    record_case(r, "encoder_classifier", m,
                {"tokens": tokens(gen, B, S, 9), "lengths": ints(5, 3), "labels": ints(2, 0)},
                m.forward, gen)

    m = DecoderLM(vocab=11, layers=2, norm_style="pre", activation="gelu", tied=True, learned_positions=False)
    record_case(r, "decoder_lm", m,
                {"tokens": tokens(gen, B, S, 11), "lengths": ints(5, 3), "labels": tokens(gen, B, S, 11)},
                m.forward, gen)

    m = DecoderLM(vocab=10, layers=1, norm_style="post", activation="relu", tied=False, learned_positions=True)
    record_case(r, "decoder_lm_untied", m,
                {"tokens": tokens(gen, B, 4, 10), "lengths": ints(2, 4), "labels": tokens(gen, B, 4, 10)},
                m.forward, gen)

    m = Seq2Seq(src_vocab=9, tgt_vocab=7, encoder_layers=2, decoder_layers=2, norm_style="post", activation="relu")
    record_case(r, "seq2seq", m,
                {"src_tokens": tokens(gen, B, S, 9), "src_lengths": ints(5, 3),
                 "tgt_tokens": tokens(gen, B, 4, 7), "tgt_lengths": ints(4, 2), "labels": tokens(gen, B, 4, 7)},
                m.forward, gen)


# ----------------------------------------------------------------------------------------------
# This file's layers against PyTorch's own (same weights, masks as booleans): a check of the
# reading of xgrad above, independent of how this file splits heads or places LayerNorm.


def load_attention(reference, mine):
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.cat([mine.q_proj.weight, mine.k_proj.weight, mine.v_proj.weight]))
        reference.in_proj_bias.copy_(torch.cat([mine.q_proj.bias, mine.k_proj.bias, mine.v_proj.bias]))
        reference.out_proj.weight.copy_(mine.out_proj.weight)
        reference.out_proj.bias.copy_(mine.out_proj.bias)


def load_common(reference, mine):
    with torch.no_grad():
        for name in ("linear1", "linear2", "norm1", "norm2", "norm3"):
            if hasattr(mine, name):
                for key, value in getattr(mine, name).state_dict().items():
                    getattr(reference, name).state_dict()[key].copy_(value)
    load_attention(reference.self_attn, mine.self_attn)


def padded(lengths, seq):
    return torch.arange(seq)[None, :] >= lengths[:, None]


def assert_close(mine, reference, what):
    err = (mine - reference).abs().max().item()
    assert err < 1e-12, f"{what}: this file's layer and PyTorch's differ by {err}"


def cross_check_encoder_layer(mine, x, lengths):
    reference = nn.TransformerEncoderLayer(D, HEADS, D_FF, dropout=0.0, activation=mine.activation,
                                           batch_first=True, norm_first=mine.norm_style == "pre")
    load_common(reference, mine)
    want = reference(x, src_key_padding_mask=padded(lengths, x.shape[1]))
    assert_close(mine(x, key_padding_bias(lengths, x.shape[1])), want, f"encoder layer {mine.norm_style}-LN")


def cross_check_decoder_layer(mine, x, memory, lengths, memory_lengths):
    reference = nn.TransformerDecoderLayer(D, HEADS, D_FF, dropout=0.0, activation=mine.activation,
                                           batch_first=True, norm_first=mine.norm_style == "pre")
    load_common(reference, mine)
    load_attention(reference.multihead_attn, mine.cross_attn)
    seq, memory_seq = x.shape[1], memory.shape[1]
    causal = torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1)
    want = reference(x, memory, tgt_mask=causal, tgt_key_padding_mask=padded(lengths, seq),
                     memory_key_padding_mask=padded(memory_lengths, memory_seq))
    self_bias = causal_bias(seq) + key_padding_bias(lengths, seq)
    got = mine(x, memory, self_bias, key_padding_bias(memory_lengths, memory_seq))
    assert_close(got, want, f"decoder layer {mine.norm_style}-LN")


def main():
    torch.manual_seed(0)  # module constructors draw from the global generator; fill_parameters overwrites
    gen = torch.Generator().manual_seed(20240611)
    r = Records()
    layer_cases(r, gen)
    model_cases(r, gen)
    r.write(HERE / "nn.txt")
    print(f"wrote {len(r.lines)} tensors to {HERE / 'nn.txt'}")


if __name__ == "__main__":
    main()
