"""What a configuration costs from its config alone: parameters, FLOPs and peak training memory.

Parameters and matmul weights are read off the model's module shapes (built on the meta device, so nothing is
allocated: tens of milliseconds, once per config); memory and FLOPs are analytic (microseconds, no device
touched); `estimates.estimate` combines them with the time measured on the device (`timing.py`). The
formulas below are what the code computes.

Memory model (bytes, one training process)
------------------------------------------
weights = 4 P and gradients = 4 P (the model is always kept in fp32; autocast only changes the
dtype of activations), optimizer = 8 P (AdamW's two fp32 moments).

Activations are the tensors autograd saves for the backward pass of one micro-batch of
N = batch_size x seq_len tokens. Per token and GPT block, with C = d_model, H = n_heads, T = seq_len,
a = bytes of an activation (4 in fp32, 2 under bf16/fp16 autocast) and r = 4 (the residual stream
stays fp32 under autocast: embeddings and LayerNorm run in fp32 and `x + attn(x)` promotes):

    LayerNorm 1 input + output          (r + a) C + 8        (+8: mean and rstd, fp32)
    attention, fused kernel             4 a C + 4 H          (q, k, v as views of the qkv output,
                                                              the output, which c_proj reuses as
                                                              its input, and the logsumexp)
    attention, math fallback            3 m C + a C + m H T (1 + 2 [dropout])
                                                             (q, k, v copies, the output copy, and
                                                              the T x T probabilities per head, plus
                                                              their dropout mask and dropped copy)
    LayerNorm 2 input + output          (r + a) C + 8
    MLP: c_fc output (GELU input) and GELU output            8 a C
    dropout masks (dropout > 0)         2 d C                (d = 1 on CUDA, whose fused dropout keeps
                                                              a bool mask; a elsewhere: a float mask)

That is 64 C + 16 + 4 H bytes in fp32 and 36 C + 16 + 4 H under bf16 with the fused kernel, which
is what `torch.autograd` saves (checked with saved-tensor hooks, torch 2.13). Which attention path:
on CPU, `scaled_dot_product_attention` uses its flash kernel (O(T) memory) unless dropout > 0,
when it falls back to the math path, which on CPU also upcasts to fp32 (m = 4); on CUDA the flash or
memory-efficient kernel (O(T), dropout included) whenever head_dim is a multiple of 8 (fp16/bf16)
or 4 (fp32), else math; on MPS the math path. Around the blocks: the final LayerNorm ((r + a) C + 8),
the token ids and targets (16), the embedding's dropout mask, and under autocast the low-precision
copies of the linear weights that autograd keeps (a per weight).

Logits and cross-entropy (separate, since they often dominate small models): per token,
(12 + a) V bytes at the start of the backward pass: the logits (a V, held by the training loop),
log-softmax output (4 V, always fp32), the gradient from nll_loss (4 V) and the gradient of the
log-softmax being computed (4 V).

LSTM layers run through oneDNN on CPU; its training workspace measured (9 a + 26) C bytes per token
and layer with torch 2.13, plus the layer's output (a C). cuDNN's reserve space is of the same order.
A GRU runs cell by cell on CPU and saves its gates: (6 a + 4) C bytes per token and layer (measured),
plus the layer's output.

Copy head (GPT with `copy_head`): its q and k projections (2 a C per token), the float32 scores'
softmax (4 T per token) and causal mask (T x T bytes), the gate, and four float32 (B, T, V) tensors of
the mixture (vocabulary softmax, copy distribution, mixture, its clamp): 16 V bytes per token.
Under autocast the final hidden state is also cast once more per projection (3 a C). Its backward
pass frees its (B, T, V) gradients as it goes (2 V bytes per token of workspace), but when a (B, T, V)
float32 tensor is below glibc's mmap threshold, the heap keeps ~28 V bytes per token of the head's
transient tensors (COPY_HEAD_HEAP_SLACK, measured).

Workspace: transient gradients of the block being back-propagated (the fp32 residual gradient and
two MLP-wide gradients: (4 + 8 a) C per token, plus 2 m H T for the math attention path).

Runtime: memory the framework itself brings in with the first training step, independent of the
model: on CPU the lazily imported optimizer stack, kernel code and thread pools (~90 MB measured),
on CUDA the context and library workspaces (~500 MB, outside torch's allocator but in the GPU's
free memory).

Peak = weights + optimizer + max(activations + logits, gradients + tied-embedding gradient)
+ workspace + allocator + runtime: gradients appear layer by layer as the activations are freed, so both
never fully coexist -- except with gradient accumulation, where the gradients of earlier
micro-batches are alive during the next forward and backward (then they are added).

Allocator (CPU only): the estimate predicts the process's peak resident memory, and glibc's malloc
serves blocks below its adaptive mmap threshold (at most 32 MiB) from heaps that keep part of what
is freed; for the GPT that measured 41-68% of the heap-served activations on top of the live
tensors (HEAP_SLACK = 0.45 of them is added). With MALLOC_MMAP_THRESHOLD_ fixed low, the
slack disappears and the estimate is 0-40% high.

FLOPs (PaLM appendix B / nanoGPT `estimate_mfu` convention)
------------------------------------------------------------
flops_per_token = 6 N_matmul + 12 L C T for the GPT, where N_matmul = 12 L C^2 + V C counts every
weight that takes part in a matrix multiply (per block qkv 3 C^2, projection C^2, MLP 8 C^2; the
output head V C whether or not it is tied to the embedding, since the head is a matmul while the
embedding is a lookup; biases, LayerNorms and positional tables are left out). 6 = 2 FLOPs per
multiply-add x (1 forward + 2 backward). The attention term counts QK^T and AV over the full T x T
score matrix (2 matmuls x 2 T C forward per layer, x3), as PaLM does, although a causal kernel
skips about half of it. LSTM: N_matmul = 8 L C^2 + V C (input and recurrent weights of four gates),
no attention term; GRU: 6 L C^2 + V C (three gates). The copy head adds 2 C^2 + C to N_matmul (its q, k
and gate projections) and 6 C T for its scores. flops_per_step = flops_per_token x batch_size x seq_len
x grad_accum_steps.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

from genai_core.config import ModelConfig, TrainConfig

MB = 1_000_000
CPU_RUNTIME_BYTES = 90 * MB
"""Framework memory of a training process beyond its tensors on CPU (optimizer stack imports, kernel code)."""
CUDA_RUNTIME_BYTES = 500 * MB
"""CUDA context, cuBLAS/cuDNN workspaces: device memory outside torch's allocator."""
MPS_RUNTIME_BYTES = 200 * MB

GLIBC_MMAP_MAX = 32 * 2**20
"""Largest mmap threshold glibc's malloc adapts to; bigger blocks are always mapped and returned on free."""
HEAP_SLACK = 0.45
"""Share of the GPT's heap-served activations that glibc keeps on top of the live tensors at the peak
(measured 0.41-0.68 over d_model 128-512, fp32/bf16, with and without dropout; torch 2.13, glibc 2.36)."""
COPY_HEAD_HEAP_SLACK = 28
"""Bytes per (token x vocabulary entry) that glibc keeps of the copy head's transient float32 (B, T, V) tensors
when each is small enough to come from its heap (measured 27-36; about 0 once they are mmapped)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of training, in bytes. `total` is the peak, not the sum of the parts (see module doc)."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    """Saved tensors of one micro-batch: blocks, embeddings, final LayerNorm, autocast weight copies."""
    logits: int
    """Logits and cross-entropy buffers of one micro-batch at their peak (batch x seq_len x vocab)."""
    workspace: int
    """Transient gradients while one block is back-propagated."""
    allocator: int
    """Freed memory the C allocator keeps (glibc heap on CPU; see HEAP_SLACK)."""
    runtime: int
    """Framework memory independent of the model (CUDA context, lazily loaded code)."""
    total: int
    available: int | None
    """Free memory of the device now (None when unknown)."""
    attention: str
    """Attention kernel the activation formula assumes: flash, memory-efficient or math (T x T)."""
    peak_phase: str
    """When the peak happens: `backward start` (activations + logits) or `backward end` (gradients)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



# --------------------------------------------------------------------------- parameters and FLOPs
@functools.lru_cache(maxsize=64)
def _weights(config_json: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(name, shape) of every trainable tensor of the model a config builds, tied ones once: the model built on
    the meta device (shapes only: no memory; tens of milliseconds, hence the cache)."""
    import torch  # only when a count is asked for: the rest of this module is arithmetic

    from genai_core.models import build_model

    with torch.device("meta"):
        model = build_model(ModelConfig.model_validate_json(config_json))
    return tuple((name, tuple(p.shape)) for name, p in model.named_parameters())


def _shapes(m: ModelConfig) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return _weights(m.model_dump_json())


def _gates(m: ModelConfig) -> int:
    """Gates of a recurrent layer: input, forget, cell, output (LSTM); reset, update, new (GRU)."""
    return 4 if m.arch == "lstm" else 3


PER_EXAMPLE_HEADS = ("span_q.", "kind_head.")
"""Heads that run once per example (at the answer position), not at every token."""


def count_params(m: ModelConfig) -> int:
    """Exact trainable parameter count of `build_model(m)`, from its module shapes."""
    return sum(math.prod(shape) for _, shape in _shapes(m))


def hidden_matrix_params(m: ModelConfig) -> int:
    """Weights of the GPT blocks' 2-D matrices (what Muon optimizes): qkv, projection and the two MLP matrices."""
    return sum(math.prod(s) for _, s in _block_matrices(m))


def _block_matrices(m: ModelConfig) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, s) for n, s in _shapes(m) if m.arch == "gpt" and n.startswith("h.") and len(s) == 2]


def muon_flops(m: ModelConfig, ns_steps: int = 5) -> float:
    """FLOPs of Muon's Newton-Schulz iterations per optimizer step: for each block matrix of sides a <= b,
    X X^T (2 a^2 b), A A (2 a^3) and B X (2 a^2 b) per iteration."""
    sides = [sorted(s) for _, s in _block_matrices(m)]
    return float(ns_steps * sum(4 * a * a * b + 2 * a**3 for a, b in sides))


def matmul_params(m: ModelConfig) -> int:
    """Weights used in matrix multiplies per token: the 2-D weights of the blocks (or recurrent gates), the output
    head and the copy and span heads (not the embeddings, which are looked up, nor the heads read once per
    example)."""
    n = sum(math.prod(s) for name, s in _shapes(m)
            if len(s) == 2 and not name.startswith(("wte.", "wpe.", *PER_EXAMPLE_HEADS)))
    if m.tie_embeddings:
        n += m.vocab_size * m.d_model  # the output head is the embedding matrix, counted once above as wte
    return n


def flops_per_token(m: ModelConfig) -> float:
    """Training FLOPs (forward + backward) per token: 6 N_matmul + 12 L C T for the GPT (see module doc),
    plus 6 C T for the copy head's scores over the window."""
    attention = 12 * m.n_layers * m.d_model * m.seq_len if m.arch == "gpt" else 0
    if m.copy_head:
        attention += 6 * m.d_model * m.seq_len  # one (T x C) @ (C x T) score matmul, forward + backward
    return float(6 * matmul_params(m) + attention)


# --------------------------------------------------------------------------- memory
def attention_path(m: ModelConfig, device_type: str, precision: str) -> str:
    """Which `scaled_dot_product_attention` kernel training uses: flash, memory-efficient or math."""
    hd = m.head_dim
    if device_type == "cuda":
        low = precision in ("bf16", "fp16")
        if low and hd % 8 == 0 and hd <= 256:
            return "flash"
        return "memory-efficient" if hd % (8 if low else 4) == 0 else "math"
    if device_type == "cpu":
        return "flash" if m.dropout == 0 else "math"  # CPU's flash kernel has no dropout
    return "math"


def memory_terms(m: ModelConfig, batch: int, device_type: str, precision: str) -> dict[str, Any]:
    """Activation, logits and workspace bytes of one micro-batch (formulas in the module docstring)."""
    C, H, T, V, L = m.d_model, m.n_heads, m.seq_len, m.vocab_size, m.n_layers
    N = batch * T
    a = 4 if precision == "fp32" else 2
    r = 4  # the residual stream stays fp32 under autocast
    drop = m.dropout > 0
    cuda = device_type == "cuda"
    mask = 1 if cuda else a  # CUDA's fused dropout keeps a bool mask; elsewhere a float mask of the input dtype
    # Around the blocks: ids + targets (int64), final LayerNorm in/out + stats, embedding dropout mask (fp32 input).
    outer = N * (16 + (r + a) * C + 8 + ((1 if cuda else 4) * C if drop else 0))
    path = m.arch
    # Saved tensors of one layer as (bytes per token, how many): their sizes decide where the allocator puts them.
    layer: list[tuple[int, int]] = []
    if m.arch == "gpt":
        path = attention_path(m, device_type, precision)
        mm = 4 if device_type == "cpu" else a  # the CPU math path upcasts to fp32
        layer += [(r * C, 2), (a * C, 2), (8, 2), (4 * a * C, 2)]  # LN inputs, LN outputs, LN stats, MLP
        if path == "math":
            probs = 1 + (2 if drop else 0)  # softmax output (+ dropout mask, dropped probabilities)
            layer += [(mm * C, 3), (a * C, 1), (mm * H * T, probs)]
        else:
            layer += [(3 * a * C, 1), (a * C, 1), (4 * H, 1)]  # qkv, output, logsumexp
        if drop:
            layer += [(mask * C, 2)]
        # The modern block's extras, measured with saved-tensor hooks (torch 2.13, CPU): QK-norm keeps its
        # input and output for q and k together (in fp32: autocast runs rms_norm in fp32), which RoPE then
        # rotates; RoPE alone keeps the rotated q and k (no longer views of the qkv output);
        # RMSNorm is composite on CPU and keeps its intermediate products. ReLU^2 saves what GELU saves.
        if m.qk_norm:  # bytes per channel by (activation bytes, math path): measured, not derived
            layer += [({(4, False): 8, (2, False): 12, (4, True): 12, (2, True): 8}[a, path == "math"] * C, 1)]
        elif m.pos_encoding == "rope":
            layer += [(2 * a * C, 1)]
        if m.norm == "rmsnorm":
            layer += [(9 * C, 1)]
        work = (4 + 8 * a) * C + (2 * mm * H * T if path == "math" else 0)
        linear_weights = L * (12 * C * C + (9 * C if m.bias else 0))
    else:
        # LSTM: oneDNN's workspace; GRU: the gates each step saves (CPU runs it cell by cell); + the layer output.
        layer += [((9 * a + 26) * C if m.arch == "lstm" else (6 * a + 4) * C, 1), (a * C, 1)]
        if drop:
            layer += [(mask * C, 1)]  # dropout between layers (and on the output)
        work = (4 + 2 * a) * C  # gradients of the layer's input and output
        G = _gates(m)
        linear_weights = L * (2 * G * C * C + (2 * G * C if m.bias else 0))
    blocks = L * N * sum(size * count for size, count in layer)
    # glibc serves allocations below its (dynamic) mmap threshold, at most 32 MiB, from the heap,
    # which keeps part of what is freed: see HEAP_SLACK.
    heap = L * N * sum(size * count for size, count in layer if size * N < GLIBC_MMAP_MAX) if m.arch == "gpt" else 0
    activations = outer + blocks
    if m.arch == "gpt" and m.logit_softcap is not None:
        activations += N * a * V  # the tanh of the logits, kept for its backward
    copy_heap = 0
    if m.copy_head:
        # q and k projections (a C each); float32 scores softmax (T per token) and its causal mask (T x T bool,
        # once); gate; and the float32 (B, T, V) vocabulary softmax, copy distribution, mixture and its clamp.
        activations += N * (2 * a * C + 4 * T + 16 * V + 8) + T * T
        if a < 4:  # the three projections and the vocabulary head each cast the final hidden state again
            activations += N * 3 * a * C
            linear_weights += 2 * C * C + C
        work += 2 * V  # the mixture's backward gradients are freed as it goes (measured: ~2 V bytes per token)
        if 4 * N * V < GLIBC_MMAP_MAX:  # its many transient (B, T, V) tensors come from glibc's heap
            copy_heap = COPY_HEAD_HEAP_SLACK * N * V
    if m.span_head:  # at every token: span_k's start and end keys, their float32 copies, the lookahead's input
        activations += N * (2 * a * C + 8 * C + m.span_lookahead * a * C)
    if a < 4:  # autocast's low-precision weight copies are saved for the backward pass
        activations += a * (linear_weights + V * C)
    return {
        "activations": activations,
        "heap_activations": heap,
        "copy_heap": copy_heap,
        "logits": N * (12 + a) * V,
        "workspace": N * work,
        "attention": path,
    }


def optimizer_state_bytes(m: ModelConfig, t: TrainConfig) -> int:
    """Bytes of the optimizer's fp32 state: AdamW's two moments per weight; Muon one momentum per hidden matrix."""
    optimizer = 8 * count_params(m)
    if t.optimizer == "muon" and m.arch == "gpt":
        optimizer -= 4 * hidden_matrix_params(m)
    return optimizer


def checkpoint_bytes(m: ModelConfig, t: TrainConfig) -> int:
    """Bytes of one checkpoint on disk: fp32 weights and the optimizer's state (safetensors adds a few kB)."""
    return 4 * count_params(m) + optimizer_state_bytes(m, t)


def memory_estimate(m: ModelConfig, t: TrainConfig, device_type: str, precision: str,
                    available: int | None = None) -> MemoryEstimate:
    """Peak bytes of training `m` with `t` on a device of this type (see the module docstring)."""
    P = count_params(m)
    weights, gradients, optimizer = 4 * P, 4 * P, optimizer_state_bytes(m, t)
    terms = memory_terms(m, t.batch_size, device_type, precision)
    head_grad = 4 * m.vocab_size * m.d_model if m.tie_embeddings else 0  # embedding grad added to the tied one
    forward_side = terms["activations"] + terms["logits"]
    if t.grad_accum_steps > 1:  # earlier micro-batches' gradients stay while the next one runs
        forward_side += gradients
    backward_end = gradients + head_grad
    peak_phase = "backward start" if forward_side >= backward_end else "backward end"
    runtime = {"cuda": CUDA_RUNTIME_BYTES, "mps": MPS_RUNTIME_BYTES}.get(device_type, CPU_RUNTIME_BYTES)
    allocator = int(HEAP_SLACK * terms["heap_activations"]) + terms["copy_heap"] if device_type == "cpu" else 0
    total = weights + optimizer + max(forward_side, backward_end) + terms["workspace"] + allocator + runtime
    return MemoryEstimate(weights=weights, gradients=gradients, optimizer=optimizer,
                          activations=terms["activations"], logits=terms["logits"], workspace=terms["workspace"],
                          allocator=allocator, runtime=runtime, total=total, available=available,
                          attention=terms["attention"], peak_phase=peak_phase)

