"""A tokenmill checkpoint as an lm-evaluation-harness model (`lm_eval.api.model.TemplateLM`,
an `LM`): log-likelihoods of continuations, rolling log-likelihoods for perplexity, and greedy
generation, batched, with the run's own tokenizer, on CPU or GPU.

It asks the same questions of the model that the harness's `hf` backend asks of an exported
one (tokenmill export), so the two give the same numbers:

- text is encoded with the run's tokenizer.json and no special tokens (as the shards were);
  an empty context is the end-of-document token, which is what precedes every document in
  training (the harness's prefix token; the export makes it bos and eos);
- a context and continuation longer than seq_len + 1 tokens lose tokens on the left, and the
  model reads the last seq_len (the `hf` backend's rule, with seq_len its max_length);
- rolling log-likelihood uses the harness's own disjoint windows of seq_len tokens;
- generation is greedy, stops at the task's `until` strings or the end-of-document token,
  and leaves room for `max_gen_toks` by cutting the context on the left, as `hf` does.

Batches are sorted longest first and right-padded: the model is causal, so padding after a
sequence changes none of its logits, and no attention mask is needed. Generation runs the
whole prefix each step (the model has no KV cache), which is fine for the short answers of
zero-shot tasks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM
from tqdm import tqdm

log = logging.getLogger("tokenmill.eval")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TokenmillLM(TemplateLM):
    """lm-evaluation-harness's view of a tokenmill GPT (see the module docstring)."""

    def __init__(
        self,
        model,
        tokenizer,
        eot_id: int,
        batch_size: int = 16,
        device: str = "cpu",
        max_gen_toks: int = 256,
    ):
        super().__init__()
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer  # tokenizers.Tokenizer
        self._eot = eot_id
        self.batch_size = int(batch_size)
        self._device = torch.device(device)
        self.max_length = model.cfg.seq_len
        self.max_gen_toks = max_gen_toks

    @classmethod
    def from_checkpoint(
        cls,
        ckpt: str | Path,
        tokenizer: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 16,
        dtype: str = "float32",
    ) -> TokenmillLM:
        """The checkpoint's model (fp32 weights, cast to `dtype`) and the run's tokenizer."""
        from tokenizers import Tokenizer

        from tokenmill.trainer.weights import load_gpt, open_checkpoint

        saved = open_checkpoint(ckpt, tokenizer)
        model = load_gpt(saved, device).to(DTYPES[dtype])
        tok = Tokenizer.from_file(str(saved.tokenizer))
        log.info("evaluating %s (step %d) on %s", saved.folder, saved.step, device)
        return cls(model, tok, saved.eod_id, batch_size, device)

    @property
    def eot_token_id(self) -> int:
        return self._eot

    @property
    def device(self) -> torch.device:
        return self._device

    def tok_encode(
        self, string: str, add_special_tokens: bool | None = None, **kwargs
    ) -> list[int]:
        return self.tokenizer.encode(string, add_special_tokens=False).ids

    def tok_decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @torch.no_grad()
    def _logprobs(self, rows: list[list[int]]) -> torch.Tensor:
        """Log-softmax (fp32) of the model's logits for right-padded rows: (B, T, vocab)."""
        width = max(len(r) for r in rows)
        batch = torch.full((len(rows), width), self._eot, dtype=torch.long)
        for i, r in enumerate(rows):
            batch[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        logits = self.model(batch.to(self._device))
        return F.log_softmax(logits.float(), dim=-1)

    def _loglikelihood_tokens(
        self, requests: list, disable_tqdm: bool = False, **kwargs
    ) -> list[tuple[float, bool]]:
        """(log P(continuation | context), whether greedy decoding gives the continuation) for
        each (key, context ids, continuation ids), in the order given."""
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i][1] + requests[i][2]))
        out: list[tuple[float, bool] | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), disable=disable_tqdm, desc="loglikelihood")
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            rows, conts = [], []
            for i in chunk:
                _, context, continuation = requests[i]
                if not continuation:
                    raise ValueError(f"empty continuation in request {requests[i][0]!r}")
                # the last seq_len tokens of context + continuation, its last token not read
                rows.append((context + continuation)[-(self.max_length + 1) :][:-1])
                conts.append(continuation)
            logprobs = self._logprobs(rows)
            for i, row, cont, lp in zip(chunk, rows, conts, logprobs, strict=True):
                at = lp[len(row) - len(cont) : len(row)]  # the positions predicting `cont`
                target = torch.tensor(cont, device=at.device)
                ll = at.gather(1, target[:, None]).sum().item()
                out[i] = (ll, bool((at.argmax(-1) == target).all()))
            bar.update(len(chunk))
        bar.close()
        return out  # type: ignore[return-value]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of each whole text, over the harness's disjoint seq_len windows
        (the first token conditioned on the end-of-document token)."""
        from lm_eval import utils

        windows, owner = [], []
        for n, request in enumerate(requests):
            (text,) = request.args
            for context, continuation in map(
                utils.make_disjoint_window,
                utils.get_rolling_token_windows(
                    token_list=self.tok_encode(text),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                ),
            ):
                windows.append((None, context, continuation))
                owner.append(n)
        totals = [0.0] * len(requests)
        for n, (ll, _) in zip(
            owner, self._loglikelihood_tokens(windows, disable_tqdm), strict=True
        ):
            totals[n] += ll
        for request, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy continuations, cut at the first of the request's `until` strings."""
        from lm_eval.models.utils import (
            handle_stop_sequences,
            normalize_gen_kwargs,
            postprocess_generated_text,
        )

        out: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):  # one batch shape per set of gen_kwargs
            groups.setdefault(repr(sorted(request.args[1].items())), []).append(i)
        eos = self.tokenizer.decode([self._eot], skip_special_tokens=False)
        bar = tqdm(total=len(requests), disable=disable_tqdm, desc="generate_until")
        for members in groups.values():
            kwargs = normalize_gen_kwargs(requests[members[0]].args[1], self.max_gen_toks)
            if kwargs.get("do_sample") or kwargs.get("temperature", 0.0) > 0:
                raise ValueError(
                    f"task {requests[members[0]].task_name} asks for sampling ({kwargs}): "
                    "tokenmill eval decodes greedily only"
                )
            until = handle_stop_sequences(kwargs.get("until"), eos=eos)
            max_new = int(kwargs["max_gen_toks"])
            if max_new >= self.max_length:
                raise ValueError(
                    f"task {requests[members[0]].task_name} generates up to {max_new} tokens, "
                    f"which leaves no room for a context in the model's {self.max_length}"
                )
            contexts = {i: self.tok_encode(requests[i].args[0]) for i in members}
            members = sorted(members, key=lambda i: -len(contexts[i]))
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                rows = [contexts[i][-(self.max_length - max_new) :] for i in chunk]
                for i, ids in zip(chunk, self._greedy(rows, max_new, until), strict=True):
                    text = postprocess_generated_text(self.tok_decode(ids), until, None)
                    out[i] = text
                    self.cache_hook.add_partial("generate_until", requests[i].args, text)
                bar.update(len(chunk))
        bar.close()
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def _greedy(self, rows: list[list[int]], max_new: int, until: list[str]) -> list[list[int]]:
        """Up to `max_new` greedy tokens after each row; a row stops at the end-of-document
        token or once its text holds a stop string."""
        new: list[list[int]] = [[] for _ in rows]
        done = [False] * len(rows)
        seqs = [list(r) for r in rows]
        for _ in range(max_new):
            live = [i for i, d in enumerate(done) if not d]
            if not live:
                break
            logprobs = self._logprobs([seqs[i] for i in live])
            for i, lp in zip(live, logprobs, strict=True):
                token = int(lp[len(seqs[i]) - 1].argmax())
                if token == self._eot:
                    done[i] = True
                    continue
                seqs[i].append(token)
                new[i].append(token)
                text = self.tok_decode(new[i])
                done[i] = any(s and s in text for s in until)
        return new
