"""EleutherAI lm-evaluation-harness adapter: any atome model as `--model atome`.

    atome lm-eval --model atome --model_args checkpoint=model.safetensors \\
        --tasks shakespeare_nextline --include_path <dir from write_local_tasks>

lm-eval 0.4.x takes models from a fixed table and has no plugin entry point, so the
class is registered when this module is imported: `atome lm-eval` (or
`python -m atome_core.harness.adapter`) imports it and then hands the arguments to
lm-eval's own command line. From Python: import this module, then
`lm_eval.simple_evaluate(model="atome", model_args="checkpoint=...", ...)`.

Scoring conventions (documented because they decide the numbers):
- A text is scored after a prefix token: `<|endoftext|>` for BPE models, a newline
  byte for byte models (which have no special tokens); the prefix is never scored.
- Contexts longer than the model's window keep their last tokens.
- Rolling log-likelihood uses lm-eval's disjoint rolling windows of the model's length.
"""
import torch
import torch.nn.functional as F
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from ..data.tokenizer import BPETokenizer
from ..formats.model_file import load_model

DEFAULT_WINDOW = 256   # for models without a positional limit (the routed model)


@register_model("atome")
class AtomeLM(LM):
    def __init__(self, checkpoint: str = None, model=None, tokenizer=None, max_length: int = None,
                 batch_size: int = 1, max_gen_toks: int = 64, **_ignored):
        super().__init__()
        if model is None:
            if checkpoint is None:
                raise ValueError("AtomeLM needs model_args checkpoint=<path to a saved atome model>")
            model, tokenizer = load_model(checkpoint)
        self.model, self.tokenizer = model.eval(), tokenizer
        window = getattr(model.cfg, "max_seq", None) or DEFAULT_WINDOW
        self.max_length = int(max_length or window)
        self.max_gen_toks = int(max_gen_toks)
        if isinstance(tokenizer, BPETokenizer):
            self.prefix_token = tokenizer.special_ids["<|endoftext|>"]
        else:
            self.prefix_token = ord("\n")

    # -- helpers ---------------------------------------------------------------

    @torch.no_grad()
    def _logprobs(self, tokens: list[int]) -> torch.Tensor:
        """log-softmax over the vocabulary at each position of `tokens` (T, V)."""
        idx = torch.tensor([tokens[-self.max_length:]], dtype=torch.long)
        return F.log_softmax(self.model(idx)[0].float(), dim=-1)

    def _score(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        """Sum of log p(continuation | context) and whether greedy decoding yields it."""
        tokens = (context + continuation)[-(self.max_length + 1):]
        logp = self._logprobs(tokens[:-1])
        n = len(continuation)
        target = torch.tensor(tokens[-n:])
        picked = logp[-n:].gather(1, target[:, None]).squeeze(1)
        greedy = bool((logp[-n:].argmax(dim=-1) == target).all())
        return float(picked.sum()), greedy

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        # Trailing spaces belong to the continuation, as lm-eval's own models do it.
        spaces = len(context) - len(context.rstrip(" "))
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.tokenizer.encode(context + continuation)
        ctx = self.tokenizer.encode(context)
        if whole[:len(ctx)] != ctx:          # BPE merged across the boundary: split by bytes
            return [self.prefix_token] + ctx, self.tokenizer.encode(continuation)
        return [self.prefix_token] + ctx, whole[len(ctx):]

    # -- the three request types -----------------------------------------------

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        out = []
        for req in requests:
            context, continuation = req.args
            ctx, cont = self._encode_pair(context, continuation)
            if not cont:
                out.append((0.0, True))
                continue
            out.append(self._score(ctx, cont))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        out = []
        for req in requests:
            (text,) = req.args
            tokens = self.tokenizer.encode(text)
            total = 0.0
            for window in get_rolling_token_windows(tokens, self.prefix_token, self.max_length, 1):
                ctx, cont = make_disjoint_window(window)
                total += self._score(ctx, cont)[0]
            out.append(total)
        return out

    @torch.no_grad()
    def generate_until(self, requests, disable_tqdm: bool = False):
        out = []
        for req in requests:
            context, gen_kwargs = req.args
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(gen_kwargs.get("max_gen_toks", self.max_gen_toks))
            tokens = [self.prefix_token] + self.tokenizer.encode(context)
            start = len(tokens)
            text = ""
            for _ in range(max_new):    # greedy: lm-eval's local tasks ask for deterministic output
                nxt = int(self._logprobs(tokens)[-1].argmax())
                tokens.append(nxt)
                text = self.tokenizer.decode(tokens[start:])
                if any(u in text for u in until):
                    break
            for u in until:
                text = text.split(u)[0]
            out.append(text)
        return out


def main(argv=None) -> int:
    """`lm_eval`'s command line with the atome model registered."""
    import sys

    from lm_eval.__main__ import cli_evaluate
    sys.argv = ["lm_eval"] + list(sys.argv[1:] if argv is None else argv)
    cli_evaluate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
