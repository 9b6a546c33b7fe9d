"""The GPT decoder of the BigScience ablations and BLOOM, in plain PyTorch, read top to bottom.

Pre-LayerNorm blocks, tied input/output embeddings, biases everywhere (as Megatron), and the
paper's switches: position embedding (none | learned | rotary | alibi), activation (gelu, the
tanh approximation as BLOOM | swiglu) and a LayerNorm right after the embedding (BLOOM's
"embedding norm"). Attention is `F.scaled_dot_product_attention`; ALiBi goes in as an additive
float mask, which rules out SDPA's flash kernel (the memory-efficient one still runs on GPU)
and costs a (heads x T x T) tensor. On a CUDA device, `attention="auto"` (the default) runs
ALiBi through FlexAttention instead (`torch.nn.attention.flex_attention`, compiled): the bias
as a score modifier and the causal mask as a block mask, fused into one kernel, no bias
tensor. `attention="flex"` forces it (on CPU it runs eagerly: slow, for the parity tests),
`"sdpa"` the bias path. Dropout in attention needs the bias path.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

POSITIONS = ("none", "learned", "rotary", "alibi")
ACTIVATIONS = ("gelu", "swiglu")
ATTENTIONS = ("auto", "sdpa", "flex")


@dataclass
class GPTConfig:
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    seq_len: int = 128
    vocab_size: int = 50257  # the tokenizer's; the embedding is padded (padded_vocab)
    ffn_hidden: int | None = None  # None: 4h for gelu, 2/3 of that (to a multiple of 16) for swiglu
    position: str = "alibi"
    activation: str = "gelu"
    embed_ln: bool = True
    dropout: float = 0.0
    init_std: float = 0.02
    layernorm_eps: float = 1e-5
    rotary_base: float = 10000.0
    vocab_multiple: int = 128  # Megatron's --make-vocab-size-divisible-by

    def __post_init__(self):
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, not {self.position!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, not {self.activation!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"hidden {self.n_embd} is not divisible by {self.n_head} heads")
        if self.position == "rotary" and self.head_dim % 2:
            raise ValueError("rotary needs an even head dimension")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def ffn(self) -> int:
        if self.ffn_hidden is not None:
            return self.ffn_hidden
        if self.activation == "swiglu":
            # Three matrices instead of two: 2/3 of 4h keeps the parameter count (the paper's
            # SwiGLU 1.3B used 5456 for 8192).
            return int(2 * 4 * self.n_embd / 3) // 16 * 16
        return 4 * self.n_embd

    @property
    def padded_vocab(self) -> int:
        m = self.vocab_multiple
        return (self.vocab_size + m - 1) // m * m


def alibi_slopes(n_head: int) -> list[float]:
    """Press et al.'s head slopes: 2^(-8/n), 2^(-16/n), ... for n a power of two; otherwise
    those of the closest lower power of two c, then every other slope of 2c until n."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_head).is_integer():
        return power_of_two(n_head)
    c = 2 ** math.floor(math.log2(n_head))
    return power_of_two(c) + power_of_two(2 * c)[0::2][: n_head - c]


def alibi_bias(n_head: int, T: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The causal attention mask with ALiBi, (n_head, T, T): -m*(i-j) at and below the diagonal,
    -inf above. (BLOOM adds +m*j instead; under a causal softmax the two are the same.)"""
    slopes = torch.tensor(alibi_slopes(n_head), dtype=torch.float32, device=device)
    pos = torch.arange(T, device=device, dtype=torch.float32)
    distance = (pos[None, :] - pos[:, None]).clamp(max=0)  # j - i, <= 0
    bias = slopes[:, None, None] * distance[None]
    future = torch.ones(T, T, dtype=torch.bool, device=device).triu(1)
    return bias.masked_fill(future, float("-inf")).to(dtype)


@dataclass
class FlexAlibi:
    """ALiBi for FlexAttention: the head slopes and the causal block mask of one length."""

    slopes: torch.Tensor
    block_mask: object

    @classmethod
    def build(cls, n_head: int, T: int, device) -> FlexAlibi:
        from torch.nn.attention.flex_attention import create_block_mask

        def causal(b, h, q_idx, kv_idx):
            return q_idx >= kv_idx

        slopes = torch.tensor(alibi_slopes(n_head), dtype=torch.float32, device=device)
        return cls(slopes, create_block_mask(causal, None, None, T, T, device=device))

    def __call__(self, q, k, v):
        slopes = self.slopes

        def alibi(score, b, h, q_idx, kv_idx):  # -m * (i - j), as alibi_bias
            return score - slopes[h] * (q_idx - kv_idx)

        return _flex_attention(q.device.type)(q, k, v, score_mod=alibi, block_mask=self.block_mask)


_FLEX: dict[str, object] = {}


def _flex_attention(device_type: str):
    """flex_attention, compiled once per process on CUDA (eager elsewhere)."""
    if device_type not in _FLEX:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX[device_type] = (
            torch.compile(flex_attention) if device_type == "cuda" else flex_attention
        )
    return _FLEX[device_type]


def flex_available() -> bool:
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def rotary_tables(head_dim: int, T: int, base: float, device=None) -> tuple[torch.Tensor, ...]:
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim)
    angles = torch.outer(torch.arange(T, device=device).float(), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)  # (T, head_dim), GPT-NeoX's rotate-half layout
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.proj.residual_out = True
        self.dropout = cfg.dropout

    def forward(self, x, attn_bias=None, rope=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        drop = self.dropout if self.training else 0.0
        if isinstance(attn_bias, FlexAlibi):  # ALiBi fused (no dropout here: GPT checks)
            y = attn_bias(q, k, v)
        elif attn_bias is None:  # lets SDPA pick its flash kernel
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:  # the bias carries the causal mask
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=drop)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return F.dropout(self.proj(y), drop, self.training)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.swiglu = cfg.activation == "swiglu"
        self.fc = nn.Linear(cfg.n_embd, (2 if self.swiglu else 1) * cfg.ffn)
        self.proj = nn.Linear(cfg.ffn, cfg.n_embd)
        self.proj.residual_out = True
        self.dropout = cfg.dropout

    def forward(self, x):
        h = self.fc(x)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h, approximate="tanh")  # BLOOM's bias_gelu (tanh approximation)
        return F.dropout(self.proj(h), self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layernorm_eps)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layernorm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, attn_bias=None, rope=None):
        x = x + self.attn(self.ln_1(x), attn_bias, rope)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig, attention: str = "auto"):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, not {attention!r}")
        self.cfg = cfg
        self.attention = attention  # how ALiBi is computed: not part of the model's shape
        self.wte = nn.Embedding(cfg.padded_vocab, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.n_embd) if cfg.position == "learned" else None
        self.ln_emb = nn.LayerNorm(cfg.n_embd, eps=cfg.layernorm_eps) if cfg.embed_ln else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layernorm_eps)
        # The output projection is the input embedding (weight tying): logits = x @ wte^T.
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            std = self.cfg.init_std
            if getattr(m, "residual_out", False):  # GPT-2 / Megatron: scale by depth
                std = std / math.sqrt(2 * self.cfg.n_layer)
            nn.init.normal_(m.weight, mean=0.0, std=std)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=self.cfg.init_std)

    def _flex(self, device) -> bool:
        """ALiBi through FlexAttention: forced ("flex"), or "auto" on CUDA where torch has it;
        never with attention dropout while training (flex has none)."""
        if self.cfg.dropout and self.training or self.attention == "sdpa":
            return False
        if self.attention == "flex":
            return True
        return device.type == "cuda" and flex_available()

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, padded vocab), or the mean cross-entropy (fp32) when targets are given."""
        B, T = idx.shape
        if T > self.cfg.seq_len and self.cfg.position == "learned":
            raise ValueError(
                f"sequence of {T} tokens; learned positions stop at {self.cfg.seq_len}"
            )
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=idx.device))
        if self.ln_emb is not None:
            x = self.ln_emb(x)
        x = self.drop(x)
        # Built once per forward and shared by every layer.
        attn_bias = rope = None
        if self.cfg.position == "alibi" and self._flex(idx.device):
            try:
                attn_bias = FlexAlibi.build(self.cfg.n_head, T, idx.device)
            except Exception as e:  # noqa: BLE001 - an old or partial torch: the bias path
                warnings.warn(
                    f"FlexAttention unavailable ({e}); ALiBi as a bias tensor", stacklevel=2
                )
                self.attention = "sdpa"
        if self.cfg.position == "alibi" and attn_bias is None:
            attn_bias = alibi_bias(self.cfg.n_head, T, idx.device, x.dtype)
        elif self.cfg.position == "rotary":
            rope = rotary_tables(self.cfg.head_dim, T, self.cfg.rotary_base, idx.device)
        for block in self.blocks:
            x = block(x, attn_bias, rope)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


def count_params(cfg: GPTConfig) -> int:
    """Parameters of GPT(cfg) without building it: per layer 12h^2 + 13h for gelu (QKV 3h^2+3h,
    output h^2+h, MLP 8h^2+5h, two LayerNorms 4h), plus the padded embedding, positions, and
    the final (and embedding) LayerNorm. BLOOM-176B: 70(12h^2+13h) + 250880h + 4h."""
    h, f = cfg.n_embd, cfg.ffn
    mlp = (2 if cfg.activation == "swiglu" else 1) * (h * f + f) + f * h + h
    layer = (3 * h * h + 3 * h) + (h * h + h) + mlp + 4 * h
    n = cfg.n_layer * layer + cfg.padded_vocab * h + 2 * h
    if cfg.position == "learned":
        n += cfg.seq_len * h
    if cfg.embed_ln:
        n += 2 * h
    return n


def flops_per_token(cfg: GPTConfig) -> int:
    """Model FLOPs per trained token, PaLM's formula (as nanoGPT's MFU): 6N + 12*L*H*Q*T.

    N counts every parameter that takes part in a matmul: all but the learned position table
    (a lookup); the tied embedding counts once, for the output projection. 6N is forward (2N)
    plus backward (4N); 12*L*H*Q*T is the attention scores and values, forward and backward,
    over the full T x T square (PaLM does not halve it for the causal mask). Activation
    recomputation is not counted: this is model FLOPs, not hardware FLOPs (Megatron's logged
    "TFLOPs" use 8N with recomputation)."""
    n = count_params(cfg) - (cfg.seq_len * cfg.n_embd if cfg.position == "learned" else 0)
    return 6 * n + 12 * cfg.n_layer * cfg.n_head * cfg.head_dim * cfg.seq_len
