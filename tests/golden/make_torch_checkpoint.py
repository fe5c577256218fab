#!/usr/bin/env python3
"""Writes tests/golden/torch_lm.safetensors and tests/golden/torch_lm.txt: a checkpoint written by
PyTorch, and what PyTorch computes with it, so that tests/test_interop.cpp can show that xgrad loads
a PyTorch state_dict by name and reproduces PyTorch's outputs (in float32).

Run with Debian's interpreter: /usr/bin/python3 tests/golden/make_torch_checkpoint.py

The model is a small decoder-only LM written with ordinary PyTorch modules and xgrad's parameter
names (graph/decoder_lm.cpp), initialised by PyTorch's own defaults after torch.manual_seed(0):
  vocab 11, d_model 16, 2 heads, d_ff 32, 2 layers, pre-LN with a final LayerNorm `layers.norm`,
  exact (erf) GELU, learned positions (max_len 8), token vectors scaled by sqrt(d_model),
  untied `lm_head` without bias, dropout 0.1 (inactive: the model runs in eval mode).
Before anything is written, each layer is checked against PyTorch's nn.TransformerEncoderLayer.

The safetensors file is written with struct and json only (no safetensors package), as the format
specifies: an 8-byte little-endian header length, the JSON header padded with spaces to a multiple
of 8, then the raw little-endian float32 data of each tensor, contiguous, in header order.

torch_lm.txt uses the record format of core.txt (see make_fixtures.py); records:
  lm.tokens, lm.lengths, lm.labels   the inputs (i32)
  lm.logits                          (B, S, vocab) float32 logits, recorded as f64
  lm.objective                       sum(cross_entropy * mask) / sum(mask) over valid tokens
"""
import json
import math
import pathlib
import struct

import torch
import torch.nn.functional as F
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent
BLOCKED = -1e9  # xgrad's nn::kBlocked, the additive bias of a masked attention score

VOCAB, D_MODEL, HEADS, D_FF, LAYERS, MAX_LEN, DROPOUT = 11, 16, 2, 32, 2, 8, 0.1


class Attention(nn.Module):
    """xgrad's nn::self_attention: q/k/v/out projections, scaled dot product plus an additive bias."""

    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(D_MODEL, D_MODEL)
        self.k_proj = nn.Linear(D_MODEL, D_MODEL)
        self.v_proj = nn.Linear(D_MODEL, D_MODEL)
        self.out_proj = nn.Linear(D_MODEL, D_MODEL)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x, bias):
        batch, seq, _ = x.shape

        def heads(t):  # (B, S, D) -> (B, heads, S, D / heads)
            return t.reshape(batch, seq, HEADS, -1).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
        mixed = self.dropout(torch.softmax(scores, dim=-1)) @ v
        return self.out_proj(mixed.transpose(1, 2).reshape(batch, seq, D_MODEL))


class PreLNLayer(nn.Module):
    """xgrad's nn::encoder_layer with NormStyle::pre: x + sublayer(LN(x)), twice."""

    def __init__(self):
        super().__init__()
        self.self_attn = Attention()
        self.linear1 = nn.Linear(D_MODEL, D_FF)
        self.linear2 = nn.Linear(D_FF, D_MODEL)
        self.norm1 = nn.LayerNorm(D_MODEL, eps=1e-5)
        self.norm2 = nn.LayerNorm(D_MODEL, eps=1e-5)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x, bias):
        x = x + self.dropout(self.self_attn(self.norm1(x), bias))
        feed_forward = self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x)))))
        return x + self.dropout(feed_forward)


class Stack(nn.Module):
    """Layers `0`, `1`, ... then the final LayerNorm `norm` (xgrad's nn::encoder with final_norm)."""

    def __init__(self):
        super().__init__()
        for i in range(LAYERS):
            self.add_module(str(i), PreLNLayer())
        self.norm = nn.LayerNorm(D_MODEL, eps=1e-5)

    def forward(self, x, bias):
        for i in range(LAYERS):
            x = getattr(self, str(i))(x, bias)
        return self.norm(x)


class DecoderLM(nn.Module):
    """graph/decoder_lm.cpp with an untied head. Parameter names are xgrad's: the token table is
    `tok_embed.weight`, the learned positions `tok_embed_pos.weight` (graph/model_config.cpp)."""

    def __init__(self):
        super().__init__()
        self.tok_embed = nn.Embedding(VOCAB, D_MODEL)
        self.tok_embed_pos = nn.Embedding(MAX_LEN, D_MODEL)
        self.dropout = nn.Dropout(DROPOUT)
        self.layers = Stack()
        self.lm_head = nn.Linear(D_MODEL, VOCAB, bias=False)

    def forward(self, tokens, lengths, labels):
        seq = tokens.shape[1]
        x = self.tok_embed(tokens) * math.sqrt(D_MODEL) + self.tok_embed_pos.weight[:seq]
        logits = self.lm_head(self.layers(self.dropout(x), attention_bias(lengths, seq)))
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1).long(), reduction="none")
        mask = valid_positions(lengths, seq).to(logits.dtype)
        return logits, (loss.reshape(mask.shape) * mask).sum() / mask.sum()


def valid_positions(lengths, seq):
    """(B, S) booleans: position t < length."""
    return torch.arange(seq)[None, :] < lengths[:, None]


def attention_bias(lengths, seq):
    """(B, 1, S, S) float32: BLOCKED above the diagonal (causal) plus BLOCKED at padded keys."""
    causal = torch.triu(torch.ones(seq, seq), diagonal=1) * BLOCKED
    padding = (~valid_positions(lengths, seq)).to(torch.float32) * BLOCKED
    return causal[None, None, :, :] + padding[:, None, None, :]


def cross_check(model, tokens, lengths):
    """Each layer against PyTorch's own pre-LN encoder layer with the same weights (boolean masks)."""
    seq = tokens.shape[1]
    x = torch.randn(tokens.shape[0], seq, D_MODEL)
    causal = torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1)
    for i in range(LAYERS):
        mine = getattr(model.layers, str(i))
        reference = nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, dropout=DROPOUT, activation="gelu",
                                               batch_first=True, norm_first=True).eval()
        with torch.no_grad():
            attn = mine.self_attn
            reference.self_attn.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
            reference.self_attn.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
            reference.self_attn.out_proj.load_state_dict(attn.out_proj.state_dict())
            for name in ("linear1", "linear2", "norm1", "norm2"):
                getattr(reference, name).load_state_dict(getattr(mine, name).state_dict())
            want = reference(x, src_mask=causal, src_key_padding_mask=~valid_positions(lengths, seq))
            got = mine(x, attention_bias(lengths, seq))
        # Compare the valid positions only: PyTorch's fast path may zero padded query rows.
        keep = valid_positions(lengths, seq)
        err = (got - want)[keep].abs().max().item()
        assert err < 1e-5, f"layer {i}: this file's layer and nn.TransformerEncoderLayer differ by {err}"


# torch dtype -> (safetensors dtype, struct format of one element); make_nn_fixtures.py writes i32 too.
SAFETENSORS_DTYPES = {torch.float32: ("F32", "f"), torch.int32: ("I32", "i")}


def safetensors_bytes(state, metadata):
    """The safetensors encoding of a {name: float32 or int32 tensor} dict, with struct and json only."""
    header = {"__metadata__": metadata}
    chunks, offset = [], 0
    for name, tensor in state.items():
        assert tensor.dtype in SAFETENSORS_DTYPES, f"{name} is {tensor.dtype}"
        dtype, element = SAFETENSORS_DTYPES[tensor.dtype]
        values = tensor.detach().contiguous().reshape(-1).tolist()
        data = struct.pack(f"<{len(values)}{element}", *values)
        header[name] = {"dtype": dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def read_back(blob):
    """Decodes safetensors_bytes' output again ({name: (shape, values)}), to check the writer."""
    (size,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + size])
    data = blob[8 + size:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        element = {dtype: element for dtype, element in SAFETENSORS_DTYPES.values()}[entry["dtype"]]
        out[name] = (entry["shape"], list(struct.unpack(f"<{(end - begin) // 4}{element}", data[begin:end])))
    return header["__metadata__"], out


class Records:
    """Lines of tests/golden/*.txt: name dtype rank d0 .. values (see make_fixtures.py)."""

    def __init__(self):
        self.lines = []

    def add(self, name, t):
        t = t.detach()
        integer = t.dtype in (torch.int32, torch.int64)
        values = t.reshape(-1).tolist()
        text = " ".join(str(int(v)) if integer else repr(float(v)) for v in values)
        fields = [name, "i32" if integer else "f64", str(t.dim()), *(str(d) for d in t.shape), text]
        self.lines.append(" ".join(field for field in fields if field))

    def write(self, path):
        path.write_text("\n".join(self.lines) + "\n")


def main():
    torch.manual_seed(0)
    model = DecoderLM().eval()  # float32, PyTorch's default initialisation; eval: dropout off

    tokens = torch.tensor([[1, 5, 2, 9, 3, 7], [4, 10, 8, 6, 0, 0]], dtype=torch.int32)
    lengths = torch.tensor([6, 4], dtype=torch.int32)
    labels = torch.tensor([[5, 2, 9, 3, 7, 10], [10, 8, 6, 1, 0, 0]], dtype=torch.int32)
    cross_check(model, tokens, lengths)
    with torch.no_grad():
        logits, objective = model(tokens.long(), lengths, labels)
    assert logits.dtype == torch.float32 and objective.dtype == torch.float32

    state = model.state_dict()
    blob = safetensors_bytes(state, {"format": "pt"})
    metadata, decoded = read_back(blob)
    assert metadata == {"format": "pt"} and list(decoded) == list(state)
    for name, tensor in state.items():
        shape, values = decoded[name]
        assert shape == list(tensor.shape) and values == tensor.reshape(-1).tolist(), name
    (HERE / "torch_lm.safetensors").write_bytes(blob)

    r = Records()
    r.add("lm.tokens", tokens)
    r.add("lm.lengths", lengths)
    r.add("lm.labels", labels)
    r.add("lm.logits", logits)
    r.add("lm.objective", objective)
    r.write(HERE / "torch_lm.txt")
    print(f"wrote {len(state)} tensors ({len(blob)} bytes) to torch_lm.safetensors; objective {objective.item():.6f}")
    for name, tensor in state.items():
        print(f"  {name} {tuple(tensor.shape)}")


if __name__ == "__main__":
    main()
