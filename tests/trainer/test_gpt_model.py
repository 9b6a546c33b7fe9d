"""The GPT: ALiBi slopes and parameter counts against published values, the switches, and
(marker `gpu`, skipped without CUDA) bf16 on the GPU against fp32 on the CPU."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from tokenmill.trainer.model import (
    GPT,
    GPTConfig,
    alibi_bias,
    alibi_slopes,
    count_params,
    flops_per_token,
)
from tokenmill.trainer.presets import PRESETS, PUBLISHED, preset


def test_alibi_slopes_power_of_two_heads():
    # Press et al.: 8 heads -> 1/2, 1/4, ..., 1/256
    assert alibi_slopes(8) == pytest.approx([2.0**-k for k in range(1, 9)], rel=1e-12)
    assert alibi_slopes(16) == pytest.approx([2.0 ** (-k / 2) for k in range(1, 17)], rel=1e-12)


def test_alibi_slopes_other_head_counts():
    # The reference implementation (ofirpress/attention_with_linear_biases) for 6 and 12 heads:
    # the slopes of 4 (resp. 8) heads, then every other slope of 8 (resp. 16).
    assert alibi_slopes(6) == pytest.approx([1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8])
    assert alibi_slopes(12) == pytest.approx(
        [2.0**-k for k in range(1, 9)] + [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]
    )


def test_alibi_slopes_bloom_176b():
    # BLOOM's build_alibi_tensor for 112 heads: 64 slopes 2^(-8k/64), k = 1..64, then 48 of
    # 2^(-(8/128) k) for the odd k = 1, 3, ..., 95.
    expected = [2 ** (-8 * k / 64) for k in range(1, 65)] + [
        2 ** (-8 * k / 128) for k in range(1, 96, 2)
    ]
    got = alibi_slopes(112)
    assert len(got) == 112
    assert got == pytest.approx(expected, rel=1e-12)
    assert got[0] == pytest.approx(0.9170040432046712) and got[63] == pytest.approx(2**-8)


def test_alibi_bias_is_causal_and_linear():
    bias = alibi_bias(4, 5)
    m = alibi_slopes(4)
    for h in range(4):
        for i in range(5):
            for j in range(5):
                if j > i:
                    assert bias[h, i, j] == float("-inf")
                else:
                    assert bias[h, i, j].item() == pytest.approx(-m[h] * (i - j))


def test_alibi_attention_equals_bloom_form():
    # -m(i-j) (ours) and +m*j (BLOOM's) differ by -m*i per row: the same softmax.
    torch.manual_seed(0)
    H, T, D = 6, 7, 8
    q, k, v = (torch.randn(1, H, T, D, dtype=torch.float64) for _ in range(3))
    ours = F.scaled_dot_product_attention(q, k, v, attn_mask=alibi_bias(H, T, dtype=q.dtype))
    m = torch.tensor(alibi_slopes(H), dtype=torch.float64)
    scores = q @ k.transpose(-1, -2) / math.sqrt(D) + m[:, None, None] * torch.arange(T)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(ours, scores.softmax(-1) @ v)


def _meta_params(cfg: GPTConfig) -> int:
    with torch.device("meta"):
        return GPT(cfg).num_params()


def test_1b3_parameters_match_the_paper():
    published, switches = PUBLISHED["1b3"]
    cfg = preset("1b3", **switches)
    assert cfg.padded_vocab == 50304 and cfg.ffn == 8192 and cfg.seq_len == 2048
    n = _meta_params(cfg)
    # Derived by hand from the architecture (every Linear and LayerNorm has a bias):
    h, L, ffn, vocab, seq = 2048, 24, 4 * 2048, 50304, 2048
    per_layer = (
        2 * h  # ln_1 weight, bias
        + (h * 3 * h + 3 * h)  # fused q, k, v projection
        + (h * h + h)  # attention output projection
        + 2 * h  # ln_2
        + (h * ffn + ffn)  # MLP up
        + (ffn * h + h)  # MLP down
    )
    assert per_layer == 12 * h * h + 13 * h
    embeddings = vocab * h + seq * h  # tokens (tied with the output layer), learned positions
    final_ln = 2 * h
    assert L * per_layer + embeddings + final_ln == 1_315_819_520
    assert n == count_params(cfg) == 1_315_819_520
    assert abs(n - published) / published < 0.01
    # the default switches (ALiBi, embedding LayerNorm) stay within 1% as well
    assert abs(_meta_params(preset("1b3", vocab_size=50257)) - published) / published < 0.01


def test_176b_parameters_match_bloom():
    published, switches = PUBLISHED["176b"]
    cfg = preset("176b", **switches)
    h = 14336
    assert published == 70 * (12 * h * h + 13 * h) + 250880 * h + 4 * h == 176_247_271_424
    assert _meta_params(cfg) == count_params(cfg) == published
    assert cfg.head_dim == 128 and cfg.position == "alibi" and cfg.embed_ln


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize(
    "switches",
    [
        {},
        {"activation": "swiglu"},
        {"position": "learned", "embed_ln": False},
        {"position": "none"},
    ],
)
def test_count_params_formula_matches_the_module(name, switches):
    cfg = preset(name, **switches)
    assert count_params(cfg) == _meta_params(cfg)


def test_swiglu_keeps_the_parameter_count():
    cfg = preset("1b3", activation="swiglu")
    assert cfg.ffn == 5456  # the paper's SwiGLU 1.3B
    ratio = count_params(cfg) / count_params(preset("1b3"))
    assert abs(ratio - 1) < 0.002


def test_flops_per_token_is_palm_formula():
    cfg = preset("1b3", vocab_size=50257, position="learned")
    n = count_params(cfg) - 2048 * 2048  # the position table is a lookup, not a matmul
    assert flops_per_token(cfg) == 6 * n + 12 * 24 * 16 * 128 * 2048


def test_unknown_preset_and_switch_fail_clearly():
    with pytest.raises(ValueError, match="unknown model"):
        preset("7b")
    with pytest.raises(ValueError, match="position must be one of"):
        preset("tiny", position="sinusoidal")


@pytest.mark.parametrize("position", ["none", "learned", "rotary", "alibi"])
@pytest.mark.parametrize("activation", ["gelu", "swiglu"])
def test_forward_is_causal_for_every_switch(position, activation):
    torch.manual_seed(0)
    cfg = GPTConfig(
        n_layer=2,
        n_embd=32,
        n_head=4,
        seq_len=16,
        vocab_size=100,
        position=position,
        activation=activation,
        embed_ln=position != "none",
    )
    model = GPT(cfg).eval()
    x = torch.randint(0, 100, (2, 16))
    logits = model(x)
    assert logits.shape == (2, 16, cfg.padded_vocab)
    y = x.clone()
    y[:, 10] = (y[:, 10] + 1) % 100
    with torch.no_grad():
        torch.testing.assert_close(model(y)[:, :10], logits[:, :10])
        assert not torch.allclose(model(y)[:, 10:], logits[:, 10:])
    loss = model(x, x)
    loss.backward()
    assert math.isfinite(loss.item()) and model.wte.weight.grad is not None


def test_output_embedding_is_tied():
    # Token 99 never appears in the input, yet its embedding row gets a gradient: the output
    # projection is the embedding.
    model = GPT(GPTConfig(vocab_size=100))
    x = torch.randint(0, 50, (2, 8))
    model(x, x).backward()
    assert model.wte.weight.grad[99].abs().sum() > 0
    assert sum(p.shape[0] == model.cfg.padded_vocab for p in model.parameters()) == 1


# ---- GPU -----------------------------------------------------------------------------------


def _forward_backward(model: GPT, x: torch.Tensor) -> tuple[float, torch.Tensor, dict]:
    """(loss, logits, {name: grad}) of one forward/backward, returned as fp32 on the CPU."""
    logits = model(x)
    loss = model(x, x.roll(-1, dims=1))
    loss.backward()
    grads = {n: p.grad.float().cpu() for n, p in model.named_parameters()}
    return loss.item(), logits.float().cpu(), grads


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda)")
@pytest.mark.parametrize("position", ["alibi", "rotary", "learned"])
def test_bf16_on_cuda_matches_fp32_on_cpu(position):
    """The tiny model with bf16 weights on the GPU (as DeepSpeed's bf16 runs it: CUDA
    attention kernels, bf16 matmuls) gives the CPU fp32 loss, logits and every gradient within
    bf16 precision, and stays causal. Bounds: bf16 on the CPU gives relative errors of 0.01%
    (loss), 0.5% (logits) and at most 1.3% (a gradient); the bounds leave 4x or more."""
    torch.manual_seed(0)
    cfg = GPTConfig(n_layer=2, n_embd=64, n_head=4, seq_len=32, vocab_size=200,
                    position=position, init_std=0.1)  # fmt: skip
    cpu = GPT(cfg)
    gpu = copy.deepcopy(cpu).to(device="cuda", dtype=torch.bfloat16)
    x = torch.randint(0, 200, (4, 32), generator=torch.Generator().manual_seed(1))
    loss, logits, grads = _forward_backward(cpu, x)
    loss_g, logits_g, grads_g = _forward_backward(gpu, x.cuda())
    assert abs(loss_g - loss) / loss < 5e-3
    assert _rel(logits_g, logits) < 0.03
    assert grads_g.keys() == grads.keys()
    worst = {n: _rel(grads_g[n], grads[n]) for n in grads}
    assert max(worst.values()) < 0.06, sorted(worst.items(), key=lambda kv: kv[1])[-3:]
    y = x.clone()
    y[:, 20] = (y[:, 20] + 1) % 200
    with torch.no_grad():
        changed = gpu(y.cuda()).float().cpu()
    torch.testing.assert_close(changed[:, :20], logits_g[:, :20], rtol=0.02, atol=0.02)
    assert _rel(changed[:, 20:], logits_g[:, 20:]) > 0.01
