"""Looking inside a model while it answers: the maths behind the Chat page.

- `format_qa_prompt`: turn a question and a context into the text format a model was trained on.
- `next_token_view`: the next-token distribution before and after the sampling knobs (repetition
  penalty, the banned unknown token, temperature, top-k, top-p), so a person sees what each knob does.
- `answer_attention`: one forward pass over prompt + answer with attention weights kept, giving how
  much each generated token's prediction looked at each prompt token (GPT only).

Pure engine code: tensors and dataclasses in, tensors and dataclasses out; no UI imports.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from genai_core.config import QALayout, SampleConfig
from genai_core.data.tokenization import EOT, Tokenizer
from genai_core.errors import GenAIError
from genai_core.generate.decoding import apply_repetition_penalty, filter_logits
from genai_core.model import GPT, LanguageModel

QA_TEMPLATES: dict[QALayout, str] = {
    "context-first": "Context: {context}\nQ: {question}\nA:",
    "question-first": "Q: {question}\nContext: {context}\nA:",
}
"""The question-answering formats a fine-tune is trained in (`ModelConfig.qa_layout`): the answer is whatever
the model writes after `A:`."""
QA_TEMPLATE = QA_TEMPLATES["context-first"]
"""The format of today's fine-tunes (the default layout)."""

_TEMPLATE_FIELDS = frozenset({"question", "context"})

# --------------------------------------------------------------------------- prompt format
def template_fields(template: str) -> set[str]:
    """Names of the `{placeholders}` of a template; a malformed template raises GenAIError."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:  # e.g. a lone "{" or "}"
        raise GenAIError(f"prompt template is malformed ({e}); write a literal brace as {{{{ or }}}}") from None


def format_qa_prompt(question: str, context: str, template: str = QA_TEMPLATE) -> str:
    """The prompt text for `question` about `context` in the format of `template`.

    Only `{question}` and `{context}` are filled in, in one pass, so braces inside the question or the
    context are kept as typed (a question containing "{context}" is not expanded).
    """
    fields = template_fields(template)
    unknown = fields - _TEMPLATE_FIELDS
    if unknown:
        raise GenAIError(f"prompt template has unknown placeholder(s) {sorted(unknown)}: "
                         "use {question} and {context} (write a literal brace as {{ or }})")
    if "question" not in fields:
        raise GenAIError("prompt template must contain {question}")
    return template.format(question=question.strip(), context=context.strip())


# --------------------------------------------------------------------------- token labels
_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}


def display_token(text: str) -> str:
    """A token's text made readable in a chart: whitespace as visible symbols, other control characters
    as escapes, the end-of-text marker shortened, the empty string as ∅."""
    if text == EOT:
        return "⟨end⟩"
    if text == "":
        return "∅"
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif not ch.isprintable():
            out.append(repr(ch)[1:-1])
        else:
            out.append(ch)
    return "".join(out)


def token_labels(tokenizer: Tokenizer, ids: Iterable[int]) -> list[str]:
    """Readable label of each id (see `display_token`)."""
    return [display_token(s) for s in tokenizer.token_strings(list(ids))]


def unique_labels(labels: Sequence[str]) -> list[str]:
    """Labels made distinct by a ·2, ·3 … suffix on repeats: a categorical chart axis would otherwise
    merge two different tokens that display alike (e.g. two partial UTF-8 byte tokens, both "�")."""
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        n = seen.get(lab, 0) + 1
        seen[lab] = n
        out.append(lab if n == 1 else f"{lab}·{n}")
    return out


# --------------------------------------------------------------------------- next-token distribution
@dataclass
class NextTokenView:
    """The next-token distribution of one context, before and after the sampling knobs.

    `before` is the model's own softmax; `after` is exactly what sampling draws from: repetition
    penalty over the context's tokens, banned tokens (the unknown token) removed, then temperature,
    top-k and top-p (`filter_logits`); at temperature 0 it is all mass on the single greedy choice.
    """

    before: torch.Tensor
    """(vocab,) softmax of the raw logits."""
    after: torch.Tensor
    """(vocab,) probabilities sampling uses; zero for every filtered-out token; sums to 1."""
    top_ids: list[int]
    """Ids worth showing: the `top_n` largest by max(before, after), ordered by `before`, highest first."""
    greedy: bool
    """Temperature 0: the most likely token (after penalty and bans) is taken, no draw."""

    @property
    def kept(self) -> int:
        """How many tokens sampling can still choose from."""
        return int((self.after > 0).sum())

    @property
    def vocab_size(self) -> int:
        return int(self.before.numel())

    def shown_before(self) -> list[float]:
        return self.before[self.top_ids].tolist()

    def shown_after(self) -> list[float]:
        return self.after[self.top_ids].tolist()

    def entropy(self, which: str = "before") -> float:
        """Entropy in nats of `before` or `after`: how spread out the choice is (never below 0)."""
        p = self.before if which == "before" else self.after
        p = p[p > 0]
        return max(0.0, float(-(p * p.log()).sum()))  # rounding can leave a certain choice at -1e-8


def next_token_view(logits: torch.Tensor, cfg: SampleConfig, *, seen_ids: Iterable[int] = (),
                    banned_ids: Iterable[int] = (), top_n: int = 20) -> NextTokenView:
    """Compare the distribution of a (vocab,) row of logits before and after the knobs of `cfg`.

    `seen_ids` are the tokens the repetition penalty applies to (the context so far); `banned_ids`
    are never sampled (the unknown token). The order of operations follows `Generation`.
    """
    if logits.dim() != 1:
        raise ValueError(f"expected a (vocab,) row of logits, got shape {tuple(logits.shape)}")
    raw = logits.detach().float().cpu()
    V = raw.numel()
    before = raw.softmax(-1)
    adjusted = raw
    seen = list(seen_ids)
    if cfg.repetition_penalty != 1.0 and seen:
        mask = torch.zeros(V, dtype=torch.bool)
        mask[torch.tensor(seen, dtype=torch.long)] = True
        adjusted = apply_repetition_penalty(adjusted, mask, cfg.repetition_penalty)
    banned = [i for i in banned_ids if 0 <= i < V]
    if banned and len(banned) < V:  # never ban everything: sampling must stay possible
        adjusted = adjusted.clone()
        adjusted[torch.tensor(banned, dtype=torch.long)] = float("-inf")
    greedy = cfg.temperature == 0
    if greedy:
        after = torch.zeros(V)
        after[int(adjusted.argmax())] = 1.0
    else:
        after = filter_logits(adjusted, cfg.temperature, cfg.top_k, cfg.top_p).softmax(-1)
    n = max(1, min(top_n, V))
    candidates = torch.topk(torch.maximum(before, after), n).indices
    order = torch.argsort(before[candidates], descending=True, stable=True)
    return NextTokenView(before=before, after=after, top_ids=candidates[order].tolist(), greedy=greedy)


def next_token_logits(model: LanguageModel, ids: Sequence[int]) -> torch.Tensor:
    """(vocab,) logits of the token after `ids` (the last `seq_len` of them), from one plain forward pass."""
    if not ids:
        raise GenAIError("the context is empty: there is nothing to predict from")
    window = list(ids)[-model.config.seq_len:]
    device = next(model.parameters()).device
    x = torch.tensor([window], dtype=torch.long, device=device)
    with torch.inference_mode():
        logits, _ = model(x)
    return logits[0, -1].float().cpu()


# --------------------------------------------------------------------------- attention
@dataclass
class AnswerAttention:
    """Attention of an answer over its prompt, recomputed in one forward pass.

    Row i belongs to answer token i and holds the attention of the position that *predicted* it (the
    token before it), i.e. where the model looked when choosing that token. Columns are prompt tokens;
    a row sums to at most 1 over them (the rest went to earlier answer tokens).
    """

    weights: torch.Tensor
    """(n_layers, n_heads, answer_tokens, prompt_tokens)."""
    prompt_ids: list[int]
    """The prompt tokens shown (the last ones of the prompt)."""
    answer_ids: list[int]
    """The answer tokens shown (the first ones of the answer)."""
    prompt_cropped: int
    """Prompt tokens left out on the left, to fit the window or the size cap."""
    answer_omitted: int
    """Answer tokens left out at the end, to fit the window or the size cap."""
    copy: torch.Tensor | None = None
    """Copy-head models: (answer_tokens, prompt_tokens) attention of the copy head, i.e. where each answer
    token would be copied from."""
    copied: torch.Tensor | None = None
    """Copy-head models: (answer_tokens,) share of each token's probability that came from copying
    (1 - the gate); the rest came from the vocabulary softmax."""

    @property
    def n_layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.weights.shape[1])

    def matrix(self, layer: int | None = None, head: int | None = None) -> torch.Tensor:
        """(answer_tokens, prompt_tokens) weights of one layer / head (0-based), None = the mean over them."""
        w = self.weights
        w = w.mean(0) if layer is None else w[layer]
        return w.mean(0) if head is None else w[head]

    @property
    def copy_share(self) -> float | None:
        """Copy-head models: the mean share of the answer tokens' probability that came from copying."""
        return None if self.copied is None else float(self.copied.mean())


def prompt_share(matrix: torch.Tensor) -> float:
    """The mean share of its attention an answer token gave the prompt, for an (answer, prompt) matrix of
    `AnswerAttention` (the rest went to the answer so far)."""
    return float(matrix.sum(1).mean())


def has_attention(model: LanguageModel) -> bool:
    return isinstance(model, GPT)


def answer_attention(model: LanguageModel, prompt_ids: Sequence[int], answer_ids: Sequence[int], *,
                     max_prompt: int = 256, max_answer: int = 64) -> AnswerAttention:
    """How much each answer token's prediction attended to each prompt token, per layer and head.

    One pass of `GPT.attention_maps` over (the end of) the prompt followed by (the start of) the
    answer, within one context window. When both do not fit, the answer keeps at most half the window
    and the prompt is cropped on the left; generation slid its window in that case, so beyond the first
    window this is an approximation of what the model saw. Sizes are capped for a readable heatmap.
    """
    if not isinstance(model, GPT):
        raise GenAIError("attention needs a GPT run: a recurrent model (LSTM or GRU) has no attention weights to show")
    if not prompt_ids:
        raise GenAIError("the prompt is empty: there is nothing to attend to")
    if not answer_ids:
        raise GenAIError("the answer is empty: there is no generated token to explain")
    T = model.config.seq_len
    P, A = len(prompt_ids), min(len(answer_ids), max(1, max_answer))
    # A answer rows need the prompt plus A - 1 answer positions; never shrink the prompt below half the
    # window (or below what the cap allows) to make room for more rows.
    keep_prompt = min(P, max(1, max_prompt), max(T - A + 1, T // 2, 1))
    A = max(1, min(A, T - keep_prompt + 1))
    prompt = list(prompt_ids)[P - keep_prompt:]
    answer = list(answer_ids)[:A]
    device = next(model.parameters()).device
    x = torch.tensor([prompt + answer[:-1]], dtype=torch.long, device=device)
    rows = slice(keep_prompt - 1, keep_prompt - 1 + A)
    with torch.inference_mode():
        maps = model.attention_maps(x)
    layers = [w[0, :, rows, :keep_prompt].float().cpu() for w in maps.layers]
    copy = copied = None
    if maps.copy is not None:
        attn, gate = maps.copy
        copy, copied = attn[0, rows, :keep_prompt].float().cpu(), 1.0 - gate[0, rows, 0].float().cpu()
    return AnswerAttention(weights=torch.stack(layers), prompt_ids=prompt, answer_ids=answer,
                           prompt_cropped=P - keep_prompt, answer_omitted=len(answer_ids) - A, copy=copy,
                           copied=copied)


__all__ = ["QA_TEMPLATE", "QA_TEMPLATES", "AnswerAttention", "NextTokenView", "answer_attention", "display_token",
           "format_qa_prompt", "has_attention", "next_token_logits", "next_token_view", "template_fields",
           "token_labels", "unique_labels"]
