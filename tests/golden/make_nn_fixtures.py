#!/usr/bin/env python3
"""Writes tests/golden/nn.txt and tests/golden/nn_f32.safetensors: outputs and gradients of xgrad's
layers (xgrad/nn) and of one small model per family (graph/), computed by PyTorch (Debian's
python3-torch), once in float64 with small shapes (nn.txt) and once in float32 with shapes large
enough for xgrad's SIMD, tiled-attention and GEMM code paths (nn_f32.safetensors, see SIZES_F32).
The C++ suite (tests/test_parity.cpp) rebuilds the same graphs with these weights and inputs, in
f64 and in f32, and must agree within the tolerances it gives; it reads these files and needs no
Python.

Run with Debian's interpreter (it rewrites both files):
    /usr/bin/python3 tests/golden/make_nn_fixtures.py

The modules below are written from xgrad's documented semantics with ordinary PyTorch pieces
(nn.Linear, nn.LayerNorm, nn.Embedding, softmax, cross_entropy); no xgrad code is involved. The
attention and the Transformer layers are also checked here against PyTorch's own
nn.MultiheadAttention / nn.TransformerEncoderLayer / nn.TransformerDecoderLayer before anything is
written, so that the fixtures do not merely restate this file's reading of xgrad.

nn.txt holds one tensor per line in the format of core.txt (see make_fixtures.py); the float32 set
is too large for text (about 3.5 times its binary size) and goes to a safetensors file instead,
float32 and int32 tensors under the same names (make_torch_checkpoint.py's writer). Records:
  <case>.param.<xgrad parameter name>   parameter values (every parameter of the case's graph)
  <case>.input.<xgrad input name>       inputs (float ones get gradients, i32 ones do not)
  <case>.output                         the layer's output, or the model's logits
  <case>.output_weights                 layers only: w in the objective sum(output * w)
  <case>.objective                      the scalar that is differentiated
  <case>.grad.<parameter name>          d objective / d parameter
  <case>.grad_input.<input name>        d objective / d float input
  <case>.float32_rounding               float32 set only: the worst relative error
                                        |x32 - x64| / max(1, |x64|) of PyTorch's float32 results (output,
                                        objective, gradients) against its float64 results on the same
                                        weights and inputs
Masks are additive biases of -1e9 (xgrad's nn::kBlocked); all dropout is off (xgrad's evaluation mode).
The float32 rounding record is the rounding error of float32 code computing the case; the C++ suite
scales its float32 tolerance of the case from it (the script prints it per case too).
"""
import math
import pathlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from make_torch_checkpoint import read_back, safetensors_bytes

HERE = pathlib.Path(__file__).resolve().parent
BLOCKED = -1e9


@dataclass(frozen=True)
class Sizes:
    """The shapes of one fixture set; tests/test_parity.cpp's Sizes holds the same numbers."""
    batch: int
    seq: int  # encoder layers, the decoder layers' memory, the models' source and LM sequences
    attention_seq: int  # the self-attention cases
    short_seq: int  # queries of cross attention and of the decoder layers, the seq2seq target
    memory_seq: int  # keys and values of the cross-attention case
    d_model: int
    heads: int
    d_ff: int
    max_len: int
    linear_in: int
    linear_out: int
    vocab: dict  # per case: embedding, encoder_classifier, decoder_lm, decoder_lm_untied, source, target
    lengths: tuple  # valid lengths (one per batch item) over seq; reversed for the decoder layers' memory
    attention_lengths: tuple  # over attention_seq, for self-attention
    causal_lengths: tuple  # over attention_seq, for causal self-attention
    short_lengths: tuple  # over short_seq
    memory_lengths: tuple  # over memory_seq
    classes: int  # of the classifier
    labels: tuple  # the classifier's classes, one per batch item


SIZES_F64 = Sizes(batch=2, seq=5, attention_seq=5, short_seq=4, memory_seq=5, d_model=8, heads=2, d_ff=12,
                  max_len=6, linear_in=5, linear_out=3,
                  vocab={"embedding": 7, "encoder_classifier": 9, "decoder_lm": 11, "decoder_lm_untied": 10,
                         "source": 9, "target": 7},
                  lengths=(5, 3), attention_lengths=(5, 3), causal_lengths=(4, 2), short_lengths=(4, 2),
                  memory_lengths=(3, 5), classes=3, labels=(2, 0))

# Chosen from xgrad's kernels (src/kernels): d_model 32, d_ff 64 and head width 8 are whole
# multiples of the SIMD width (8 float32 lanes with AVX2); the self-attention cases' 70 queries span
# two query blocks of the tiled attention (kQueryBlock 64), the second one all padding for one batch
# item and causal for the other, and the cross-attention case's 150 keys two key tiles (kKeyTile
# 128), the second one valid for one batch item and all padding for the other; odd extents (seq 36,
# short_seq 23, vocab 37, 41 and 29, 27 linear outputs) leave scalar tails after the vector bodies.
# The parameter counts, stored twice (value and gradient), decide the file's size; these keep it
# near 1.9 MiB.
SIZES_F32 = Sizes(batch=2, seq=36, attention_seq=70, short_seq=23, memory_seq=150, d_model=32, heads=4, d_ff=64,
                  max_len=40, linear_in=32, linear_out=27,
                  vocab={"embedding": 37, "encoder_classifier": 37, "decoder_lm": 41, "decoder_lm_untied": 37,
                         "source": 37, "target": 29},
                  lengths=(36, 23), attention_lengths=(70, 45), causal_lengths=(61, 70), short_lengths=(23, 9),
                  memory_lengths=(150, 97), classes=5, labels=(4, 1))


class Records:
    """The tensors of one fixture set, written as text lines (float64) or safetensors (float32)."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.tensors = {}

    def add(self, name, t):
        t = torch.as_tensor(t).detach()
        assert name not in self.tensors, name
        # A copy: later runs of the same module must not change what was recorded.
        self.tensors[name] = (t.to(torch.int32) if t.dtype in (torch.int32, torch.int64) else t.to(self.dtype)).clone()

    def text_line(self, name, t):
        dtype = "i32" if t.dtype == torch.int32 else "f64"
        values = t.reshape(-1).tolist()
        text = " ".join(str(int(v)) if dtype == "i32" else repr(float(v)) for v in values)
        dims = " ".join(str(d) for d in t.shape)
        return " ".join(part for part in (name, dtype, str(t.dim()), dims, text) if part)

    def write(self, path):
        if self.dtype == torch.float64:
            path.write_text("".join(self.text_line(name, t) + "\n" for name, t in self.tensors.items()))
            return
        blob = safetensors_bytes(self.tensors, {"written_by": "tests/golden/make_nn_fixtures.py"})
        _, decoded = read_back(blob)
        for name, t in self.tensors.items():
            assert decoded[name] == (list(t.shape), t.reshape(-1).tolist()), name
        path.write_bytes(blob)


# ----------------------------------------------------------------------------------------------
# Masks and positions, as xgrad defines them


def key_padding_bias(lengths, seq_len):
    """(B, 1, 1, S): 0 for key positions t < length, BLOCKED after them."""
    padded = torch.arange(seq_len)[None, :] >= lengths[:, None]
    return (padded.to(torch.get_default_dtype()) * BLOCKED)[:, None, None, :]


def causal_bias(seq_len):
    """(S, S): BLOCKED above the diagonal."""
    later = torch.triu(torch.ones(seq_len, seq_len), diagonal=1)
    return later * BLOCKED


def sequence_mask(lengths, seq_len):
    return (torch.arange(seq_len)[None, :] < lengths[:, None]).to(torch.get_default_dtype())


def sinusoidal_table(max_len, dim):
    """PE(p, 2i) = sin(p / 10000^(2i/dim)), PE(p, 2i+1) = cos(p / 10000^(2i/dim)), computed in float64
    and rounded to the default dtype, as xgrad rounds its table."""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))
    table = torch.zeros(max_len, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table.to(torch.get_default_dtype())


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
    def __init__(self, sz, norm_style, activation):
        super().__init__()
        self.norm_style, self.activation = norm_style, activation
        self.self_attn = Attention(sz.d_model, sz.heads)
        self.linear1 = nn.Linear(sz.d_model, sz.d_ff)
        self.linear2 = nn.Linear(sz.d_ff, sz.d_model)
        self.norm1 = nn.LayerNorm(sz.d_model, eps=1e-5)
        self.norm2 = nn.LayerNorm(sz.d_model, eps=1e-5)

    def forward(self, x, bias):
        x = residual(x, self.norm1, self.norm_style, lambda h: self.self_attn(h, h, bias))
        return residual(x, self.norm2, self.norm_style,
                        lambda h: feed_forward(self.linear1, self.linear2, self.activation, h))


class DecoderLayer(nn.Module):
    def __init__(self, sz, norm_style, activation):
        super().__init__()
        self.norm_style, self.activation = norm_style, activation
        self.self_attn = Attention(sz.d_model, sz.heads)
        self.cross_attn = Attention(sz.d_model, sz.heads)
        self.linear1 = nn.Linear(sz.d_model, sz.d_ff)
        self.linear2 = nn.Linear(sz.d_ff, sz.d_model)
        self.norm1 = nn.LayerNorm(sz.d_model, eps=1e-5)
        self.norm2 = nn.LayerNorm(sz.d_model, eps=1e-5)
        self.norm3 = nn.LayerNorm(sz.d_model, eps=1e-5)

    def forward(self, x, memory, self_bias, memory_bias):
        x = residual(x, self.norm1, self.norm_style, lambda h: self.self_attn(h, h, self_bias))
        x = residual(x, self.norm2, self.norm_style, lambda h: self.cross_attn(h, memory, memory_bias))
        return residual(x, self.norm3, self.norm_style,
                        lambda h: feed_forward(self.linear1, self.linear2, self.activation, h))


class Stack(nn.Module):
    """Layers `0`, `1`, ... and, with pre-LN, a final LayerNorm `norm` (xgrad's nn::encoder/decoder)."""

    def __init__(self, sz, make_layer, layers, final_norm):
        super().__init__()
        for i in range(layers):
            self.add_module(str(i), make_layer())
        self.count = layers
        self.norm = nn.LayerNorm(sz.d_model, eps=1e-5) if final_norm else None

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

    def __init__(self, sz, vocab, learned_positions):
        super().__init__()
        self.d_model, self.max_len = sz.d_model, sz.max_len
        self.table = nn.Embedding(vocab, sz.d_model)
        self.positions = nn.Embedding(sz.max_len, sz.d_model) if learned_positions else None

    def forward(self, tokens):
        seq = tokens.shape[1]
        table = self.positions.weight if self.positions is not None else sinusoidal_table(self.max_len, self.d_model)
        return self.table(tokens) * math.sqrt(self.d_model) + table[:seq]


def stack(sz, layers, norm_style, activation, decoder=False):
    layer = DecoderLayer if decoder else EncoderLayer
    return Stack(sz, lambda: layer(sz, norm_style, activation), layers, final_norm=norm_style == "pre")


class EncoderClassifier(nn.Module):
    def __init__(self, sz, vocab, classes, layers, norm_style, activation):
        super().__init__()
        self.tok_embed = Embedder(sz, vocab, learned_positions=False)
        self.encoder = stack(sz, layers, norm_style, activation)
        self.pooler = nn.Linear(sz.d_model, sz.d_model)
        self.classifier = nn.Linear(sz.d_model, classes)

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
    def __init__(self, sz, vocab, layers, norm_style, activation, tied, learned_positions):
        super().__init__()
        self.tied = tied
        self.tok_embed = Embedder(sz, vocab, learned_positions)
        self.layers = stack(sz, layers, norm_style, activation)
        self.lm_head = None if tied else nn.Linear(sz.d_model, vocab, bias=False)

    def forward(self, tokens, lengths, labels):
        seq = tokens.shape[1]
        bias = causal_bias(seq) + key_padding_bias(lengths, seq)
        hidden = self.layers(self.tok_embed(tokens), bias)
        logits = hidden @ self.tok_embed.table.weight.T if self.tied else self.lm_head(hidden)
        return logits, masked_token_loss(logits, labels, lengths)


class Seq2Seq(nn.Module):
    def __init__(self, sz, src_vocab, tgt_vocab, encoder_layers, decoder_layers, norm_style, activation):
        super().__init__()
        self.src_embed = Embedder(sz, src_vocab, learned_positions=False)
        self.tgt_embed = Embedder(sz, tgt_vocab, learned_positions=False)
        self.encoder = stack(sz, encoder_layers, norm_style, activation)
        self.decoder = stack(sz, decoder_layers, norm_style, activation, decoder=True)
        self.output_proj = nn.Linear(sz.d_model, tgt_vocab)

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


def differentiate(module, inputs, forward, output_weights):
    """Runs forward(**inputs) -> (output, objective or None) and differentiates the objective, or
    sum(output * w) with w = output_weights(output); returns (output, objective, w or None,
    {record suffix: gradient}) for every parameter and float input."""
    module.zero_grad()
    for t in inputs.values():
        if t.is_floating_point():
            t.grad = None
            t.requires_grad_(True)
    output, objective = forward(**inputs)
    weights = None
    if objective is None:
        weights = output_weights(output)
        objective = (output * weights).sum()
    objective.backward()
    # Copies: converting the module to another dtype later converts its .grad tensors in place.
    grads = {f"grad.{name}": p.grad.clone() if p.grad is not None else torch.zeros_like(p)
             for name, p in xgrad_parameter_names(module).items()}
    grads.update({f"grad_input.{name}": t.grad.clone() for name, t in inputs.items() if t.is_floating_point()})
    return output, objective, weights, grads


def relative_error(got, want):
    """max |got - want| / max(1, |want|), the measure tests/test_parity.cpp uses."""
    return ((got.double() - want.double()).abs() / want.double().abs().clamp(min=1)).max().item()


def float32_rounding_error(module, inputs, forward, weights, output, objective, grads):
    """How far this float32 run is from float64 on the same weights and inputs (which float32 holds
    exactly): PyTorch's own float32 rounding error of the output, the objective and the gradients
    (the worst of them), whose worst scales the C++ suite's float32 tolerance of the case."""
    torch.set_default_dtype(torch.float64)
    module.double()
    wide = {name: t.detach().double() if t.is_floating_point() else t for name, t in inputs.items()}
    exact_output, exact_objective, _, exact_grads = differentiate(
        module, wide, forward, lambda _: weights.double())
    module.float()
    torch.set_default_dtype(torch.float32)
    return {"output": relative_error(output, exact_output), "objective": relative_error(objective, exact_objective),
            "gradients": max(relative_error(grads[k], exact_grads[k]) for k in grads)}


def record_case(r, case, module, inputs, forward, gen):
    """Fills the parameters, differentiates forward's objective (or sum(output * w) with fixed random
    w) with respect to every parameter and float input, and records everything under `case`."""
    fill_parameters(module, gen)
    output, objective, weights, grads = differentiate(
        module, inputs, forward, lambda output: torch.randn(output.shape, generator=gen))
    if weights is not None:
        r.add(f"{case}.output_weights", weights)
    for name, p in xgrad_parameter_names(module).items():
        r.add(f"{case}.param.{name}", p)
    for name, t in inputs.items():
        r.add(f"{case}.input.{name}", t)
    r.add(f"{case}.output", output)
    r.add(f"{case}.objective", objective)
    for suffix, g in grads.items():
        r.add(f"{case}.{suffix}", g)
    note = ""
    if r.dtype == torch.float32:
        errors = float32_rounding_error(module, inputs, forward, weights, output, objective, grads)
        r.add(f"{case}.float32_rounding", torch.tensor(max(errors.values())))
        note = "; float32 vs float64: " + ", ".join(f"{kind} {error:.1e}" for kind, error in errors.items())
    print(f"{case}: {len(xgrad_parameter_names(module))} parameters, objective {objective.item():.6f}{note}")


def tokens(gen, batch, seq, vocab):
    return torch.randint(0, vocab, (batch, seq), generator=gen, dtype=torch.int32)


def ints(*values):
    return torch.tensor(values, dtype=torch.int32)


# Token ids of the float64 embedding case, with repeats that the gradient must accumulate.
EMBEDDING_IDS_F64 = ((0, 4, 4, 6, 1), (2, 1, 0, 0, 3))


def layer_cases(r, sz, gen):
    def randn(*shape):
        return torch.randn(shape, generator=gen)

    b, s, short, mem, d = sz.batch, sz.seq, sz.short_seq, sz.memory_seq, sz.d_model
    lengths, memory_lengths = ints(*sz.lengths), ints(*sz.memory_lengths)
    a = sz.attention_seq
    m = named("fc", nn.Linear(sz.linear_in, sz.linear_out))
    record_case(r, "linear", m, {"x": randn(b, s, sz.linear_in)}, lambda x: (m.fc(x), None), gen)
    m = named("fc", nn.Linear(sz.linear_in, sz.linear_out, bias=False))
    record_case(r, "linear_nobias", m, {"x": randn(b, s, sz.linear_in)}, lambda x: (m.fc(x), None), gen)

    vocab = sz.vocab["embedding"]
    m = named("embed", nn.Embedding(vocab, d))
    ids = torch.tensor(EMBEDDING_IDS_F64, dtype=torch.int32) if sz == SIZES_F64 else tokens(gen, b, s, vocab)
    record_case(r, "embedding", m, {"tokens": ids}, lambda tokens: (m.embed(tokens) * math.sqrt(d), None), gen)

    r.add("positions.output", sinusoidal_table(sz.max_len, d))

    m = named("norm", nn.LayerNorm(d, eps=1e-5))
    record_case(r, "layer_norm", m, {"x": randn(b, s, d) * 2 + 0.5}, lambda x: (m.norm(x), None), gen)

    for activation in ("relu", "gelu"):
        m = named("ff", FeedForward(d, sz.d_ff, activation))
        record_case(r, f"feed_forward_{activation}", m, {"x": randn(b, s, d)}, lambda x: (m.ff(x), None), gen)

    m = named("attn", Attention(d, sz.heads))
    record_case(r, "self_attention", m, {"x": randn(b, a, d), "lengths": ints(*sz.attention_lengths)},
                lambda x, lengths: (m.attn(x, x, key_padding_bias(lengths, a)), None), gen)
    record_case(r, "causal_self_attention", m, {"x": randn(b, a, d), "lengths": ints(*sz.causal_lengths)},
                lambda x, lengths: (m.attn(x, x, causal_bias(a) + key_padding_bias(lengths, a)), None), gen)
    record_case(r, "cross_attention", m,
                {"x": randn(b, short, d), "memory": randn(b, mem, d), "memory_lengths": memory_lengths},
                lambda x, memory, memory_lengths: (m.attn(x, memory, key_padding_bias(memory_lengths, mem)), None), gen)

    for norm_style, activation in (("post", "relu"), ("pre", "gelu")):
        m = named("enc", EncoderLayer(sz, norm_style, activation))
        record_case(r, f"encoder_layer_{norm_style}", m, {"x": randn(b, s, d), "lengths": lengths},
                    lambda x, lengths: (m.enc(x, key_padding_bias(lengths, s)), None), gen)
        cross_check_encoder_layer(sz, m.enc, randn(b, s, d), lengths)

    short_lengths, memory_lengths = ints(*sz.short_lengths), ints(*reversed(sz.lengths))
    for norm_style, activation in (("post", "gelu"), ("pre", "relu")):
        m = named("dec", DecoderLayer(sz, norm_style, activation))

        def decoder_forward(x, memory, lengths, memory_lengths):
            self_bias = causal_bias(short) + key_padding_bias(lengths, short)
            return m.dec(x, memory, self_bias, key_padding_bias(memory_lengths, s)), None

        record_case(r, f"decoder_layer_{norm_style}", m,
                    {"x": randn(b, short, d), "memory": randn(b, s, d), "lengths": short_lengths,
                     "memory_lengths": memory_lengths},
                    decoder_forward, gen)
        cross_check_decoder_layer(sz, m.dec, randn(b, short, d), randn(b, s, d), short_lengths, memory_lengths)


def model_cases(r, sz, gen):
    b, s, short, vocab = sz.batch, sz.seq, sz.short_seq, sz.vocab
    lengths, short_lengths = ints(*sz.lengths), ints(*sz.short_lengths)
    m = EncoderClassifier(sz, vocab=vocab["encoder_classifier"], classes=sz.classes, layers=2, norm_style="post",
                          activation="relu")
    record_case(r, "encoder_classifier", m,
                {"tokens": tokens(gen, b, s, vocab["encoder_classifier"]), "lengths": lengths,
                 "labels": ints(*sz.labels)},
                m.forward, gen)

    v = vocab["decoder_lm"]
    m = DecoderLM(sz, vocab=v, layers=2, norm_style="pre", activation="gelu", tied=True, learned_positions=False)
    record_case(r, "decoder_lm", m,
                {"tokens": tokens(gen, b, s, v), "lengths": lengths, "labels": tokens(gen, b, s, v)},
                m.forward, gen)

    # The short lengths the other way round, so that here the first sequence is the padded one.
    v = vocab["decoder_lm_untied"]
    m = DecoderLM(sz, vocab=v, layers=1, norm_style="post", activation="relu", tied=False, learned_positions=True)
    record_case(r, "decoder_lm_untied", m,
                {"tokens": tokens(gen, b, short, v), "lengths": ints(*reversed(sz.short_lengths)),
                 "labels": tokens(gen, b, short, v)},
                m.forward, gen)

    src, tgt = vocab["source"], vocab["target"]
    m = Seq2Seq(sz, src_vocab=src, tgt_vocab=tgt, encoder_layers=2, decoder_layers=2, norm_style="post",
                activation="relu")
    record_case(r, "seq2seq", m,
                {"src_tokens": tokens(gen, b, s, src), "src_lengths": lengths,
                 "tgt_tokens": tokens(gen, b, short, tgt), "tgt_lengths": short_lengths,
                 "labels": tokens(gen, b, short, tgt)},
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
    limit = 1e-12 if mine.dtype == torch.float64 else 1e-5  # the two compute in different orders
    assert err < limit, f"{what}: this file's layer and PyTorch's differ by {err}"


def cross_check_encoder_layer(sz, mine, x, lengths):
    reference = nn.TransformerEncoderLayer(sz.d_model, sz.heads, sz.d_ff, dropout=0.0, activation=mine.activation,
                                           batch_first=True, norm_first=mine.norm_style == "pre")
    load_common(reference, mine)
    want = reference(x, src_key_padding_mask=padded(lengths, x.shape[1]))
    assert_close(mine(x, key_padding_bias(lengths, x.shape[1])), want, f"encoder layer {mine.norm_style}-LN")


def cross_check_decoder_layer(sz, mine, x, memory, lengths, memory_lengths):
    reference = nn.TransformerDecoderLayer(sz.d_model, sz.heads, sz.d_ff, dropout=0.0, activation=mine.activation,
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


def write_fixtures(sz, dtype, seed, path):
    torch.set_default_dtype(dtype)
    torch.manual_seed(0)  # module constructors draw from the global generator; fill_parameters overwrites
    gen = torch.Generator().manual_seed(seed)
    r = Records(dtype)
    layer_cases(r, sz, gen)
    model_cases(r, sz, gen)
    r.write(path)
    print(f"wrote {len(r.tensors)} tensors ({path.stat().st_size} bytes) to {path}")


def main():
    write_fixtures(SIZES_F64, torch.float64, 20240611, HERE / "nn.txt")
    write_fixtures(SIZES_F32, torch.float32, 20240612, HERE / "nn_f32.safetensors")


if __name__ == "__main__":
    main()
