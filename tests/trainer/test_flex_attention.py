"""ALiBi through FlexAttention (the fused path for GPUs) against the additive-bias path: the
same logits, loss and gradients on CPU, where flex runs eagerly; and who picks which."""

from __future__ import annotations

import warnings

import pytest
import torch

from tokenmill.trainer.model import GPT, GPTConfig, flex_available

pytestmark = pytest.mark.skipif(not flex_available(), reason="this torch has no flex_attention")


def _pair(n_head: int, device="cpu"):
    torch.manual_seed(n_head)
    cfg = GPTConfig(n_layer=2, n_embd=8 * n_head, n_head=n_head, seq_len=160, vocab_size=300)
    bias, flex = GPT(cfg, "sdpa").to(device), GPT(cfg, "flex").to(device)
    flex.load_state_dict(bias.state_dict())
    return bias, flex


@pytest.mark.parametrize(("n_head", "T"), [(4, 17), (6, 64), (8, 130)])
def test_flex_forward_equals_the_bias_path(n_head, T):
    """On CPU flex runs forward only (torch has no CPU backward for it): logits and loss."""
    bias, flex = _pair(n_head)
    idx, targets = torch.randint(0, 300, (2, T)), torch.randint(0, 300, (2, T))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eager flex_attention says it is slow
        assert torch.allclose(flex(idx), bias(idx), atol=1e-5, rtol=0)
        assert abs(flex(idx, targets).item() - bias(idx, targets).item()) < 1e-6


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("n_head", "T"), [(4, 17), (6, 64), (8, 130)])
def test_flex_gradients_equal_the_bias_path_on_cuda(n_head, T):
    bias, flex = _pair(n_head, "cuda")
    idx = torch.randint(0, 300, (2, T), device="cuda")
    targets = torch.randint(0, 300, (2, T), device="cuda")
    lf, lb = flex(idx, targets), bias(idx, targets)
    lf.backward()
    lb.backward()
    assert abs(lf.item() - lb.item()) < 1e-5
    for (name, pf), pb in zip(flex.named_parameters(), bias.parameters(), strict=True):
        assert torch.allclose(pf.grad, pb.grad, atol=1e-4, rtol=1e-3), name


def test_who_takes_the_flex_path():
    cfg = GPTConfig(n_layer=1, n_embd=16, n_head=2, seq_len=8, vocab_size=50)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not GPT(cfg)._flex(cpu)  # auto: only on CUDA
    assert GPT(cfg)._flex(cuda) == flex_available()
    assert GPT(cfg, "flex")._flex(cpu) and not GPT(cfg, "sdpa")._flex(cuda)
    drop = GPT(GPTConfig(n_layer=1, n_embd=16, n_head=2, seq_len=8, dropout=0.1), "flex")
    assert not drop._flex(cpu)  # training with attention dropout: the bias path
    drop.eval()
    assert drop._flex(cpu)
    with pytest.raises(ValueError, match="attention must be one of"):
        GPT(cfg, "flash")
