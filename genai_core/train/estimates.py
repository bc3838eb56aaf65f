"""What a configuration will cost before it is trained: parameters, memory, FLOPs and time.

`estimate(config)` is the engine's single source of the numbers the app shows while a person moves
sliders. Everything except the time is analytic (microseconds); the time is calibrated by timing a
few real training steps of the exact model on the device when that is cheap, otherwise derived from
a measured device throughput. Calibrations are cached per (shape, device) for the life of the
process, so repeated calls are fast.

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

Time
----
seconds_per_step = grad_accum_steps x (forward + backward of one micro-batch) + optimizer step
(clipping included). `total_seconds` adds evaluations (eval_batches forwards every evaluation) and
periodic samples (sample_tokens single-token decode steps); checkpoint writes and data preparation
are not included. The forward, backward, optimizer and decode times are measured (1 warmup + 3 timed
steps of the exact model on random ids, medians) when the throughput model below puts a step under
CALIBRATE_BELOW_S and the run needs at most half the free memory; otherwise they come from
FLOPs / (measured matmul FLOP/s x UTILISATION) + TRAFFIC_PASSES x activation bytes / measured copy
bandwidth + OP_OVERHEAD_S per eager op.
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from genai_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig, steps_per_epoch
from genai_core.data.tokenstore import Batch
from genai_core.devices import (
    busy_cores,
    cpu_cores,
    resolve_compile,
    resolve_device,
    resolve_precision,
    resolve_threads,
)
from genai_core.units import format_bytes

MB = 1_000_000
CPU_RUNTIME_BYTES = 90 * MB
"""Framework memory of a training process beyond its tensors on CPU (optimizer stack imports, kernel code)."""
CUDA_RUNTIME_BYTES = 500 * MB
"""CUDA context, cuBLAS/cuDNN workspaces: device memory outside torch's allocator."""
MPS_RUNTIME_BYTES = 200 * MB

CALIBRATE_BELOW_S = 0.5
"""Time real steps only when one step is estimated below this (a calibration runs 4 of them)."""
CALIBRATE_MEMORY_SHARE = 0.5
"""...and when the run needs at most this share of the free memory (the app must not be the one to OOM)."""
TIMED_STEPS = 3
UTILISATION = {"cpu": 0.7, "cuda": 0.4, "mps": 0.3}
"""Share of the large-matmul throughput that a training step's matmuls reach (fallback path only; CPU:
measured 0.65-0.7 for GPTs of d_model 128-512 against a 1024^3 matmul, one thread, torch 2.13)."""
TRAFFIC_PASSES = 8
"""Times each saved activation byte crosses memory in a step: written once, then read and rewritten by
the elementwise kernels of forward and backward (LayerNorm, GELU, softmax, their gradients)."""
OP_OVERHEAD_S = 20e-6
"""Dispatch cost of one eager op (Python, autograd, kernel launch): what small models are bound by."""
NOMINAL_THROUGHPUT = {"cpu": (10e9, 10e9), "cuda": (50e12, 1e12), "mps": (3e12, 100e9)}
"""(FLOP/s per CPU thread or per device, bytes/s) assumed when calibrate=False and nothing was measured."""
TIGHT_SHARE = 0.8
GLIBC_MMAP_MAX = 32 * 2**20
"""Largest mmap threshold glibc's malloc adapts to; bigger blocks are always mapped and returned on free."""
HEAP_SLACK = 0.45
"""Share of the GPT's heap-served activations that glibc keeps on top of the live tensors at the peak
(measured 0.41-0.68 over d_model 128-512, fp32/bf16, with and without dropout; torch 2.13, glibc 2.36)."""
COPY_HEAD_HEAP_SLACK = 28
"""Bytes per (token x vocabulary entry) that glibc keeps of the copy head's transient float32 (B, T, V) tensors
when each is small enough to come from its heap (measured 27-36; about 0 once they are mmapped)."""

COMPILE_SECONDS = 30.0
"""What torch.compile takes on its first step on CPU (measured 31-33 s for d_model 128-256, torch 2.13)."""
BUSY_CORES = 0.5
"""Cores busy with other programs from which the machine counts as busy: no step is timed then, and the
estimate says so."""

_LOCK = threading.Lock()
_PENDING: set[tuple[Any, ...]] = set()
_CALIBRATIONS: dict[tuple[Any, ...], _Timing] = {}
_THROUGHPUT: dict[tuple[str, str, int], tuple[float, float]] = {}


# --------------------------------------------------------------------------- results
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


@dataclass(frozen=True)
class Estimate:
    """Everything the app shows about a configuration before training it."""

    arch: str
    device: str
    precision: str
    threads: int | None
    """CPU threads the run would train with (None on a GPU)."""
    compiled: bool
    """The run compiles its model with torch.compile."""
    params: int
    """Trainable parameters (tied weights counted once); equals `sum(p.numel() for p in model.parameters())`."""
    params_matmul: int
    """Weights taking part in matrix multiplies: the N of `6 N` FLOPs per token."""
    memory: MemoryEstimate
    tokens_per_step: int
    flops_per_token: float
    flops_per_step: float
    seconds_per_step: float
    tokens_per_second: float
    steps_per_epoch: int | None
    seconds_per_epoch: float | None
    total_steps: int | None
    total_seconds: float | None
    """Training steps plus evaluations and samples (checkpoint writes not included)."""
    overhead_seconds: float | None
    """The evaluation and sampling part of `total_seconds`."""
    calibrated: bool
    """The time comes from timing this model's real training steps on the device (or from a run of the
    same shape that trained on this machine)."""
    pending: bool
    """A calibration is running in the background; ask again in a moment for the timed figure."""
    busy_cores: float
    """Cores other programs kept busy when the estimate was made (0 when not measured)."""
    cached: bool
    """The timing was reused from an earlier call in this process."""
    method: str
    fits: bool
    message: str
    """Empty when everything is fine; otherwise what is wrong and what to change."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Timing:
    """Seconds of one micro-batch's forward / backward, one optimizer step, one decoded token."""

    forward: float
    backward: float
    optimizer: float
    token: float
    calibrated: bool
    method: str


# --------------------------------------------------------------------------- parameters and FLOPs
def count_params(m: ModelConfig) -> int:
    """Exact trainable parameter count of `build_model(m)`, computed from the config alone."""
    C, V, L = m.d_model, m.vocab_size, m.n_layers
    b = 1 if m.bias else 0
    # LayerNorm gain (+ bias); RMSNorm has a gain only (the recurrent models always use LayerNorm).
    ln = C if m.arch == "gpt" and m.norm == "rmsnorm" else C * (1 + b)
    n = V * C + ln  # token embedding, final LayerNorm
    if not m.tie_embeddings:
        n += V * C  # lm_head (bias-free)
    if m.arch == "gpt":
        if m.pos_encoding == "learned":
            n += m.seq_len * C  # the sinusoidal table is a buffer, not a parameter
        if m.copy_head:
            n += 2 * C * C + C + 1  # copy_q and copy_k (C x C, no bias), copy_gate (C -> 1, always with a bias)
        # QK-norm has no parameters, nor has RoPE.
        block = 2 * ln + (3 * C * C + b * 3 * C) + (C * C + b * C) + (4 * C * C + b * 4 * C) + (4 * C * C + b * C)
        return n + L * block
    # nn.LSTM / nn.GRU: per layer weight_ih (G C x C) and weight_hh (G C x C), and bias_ih + bias_hh (G C each),
    # with G = 4 gates for the LSTM, 3 for the GRU.
    G = _gates(m)
    return n + L * (2 * G * C * C + b * 2 * G * C)


def hidden_matrix_params(m: ModelConfig) -> int:
    """Weights of the GPT blocks' 2-D matrices (what Muon optimizes): qkv, projection and the two MLP matrices."""
    return 12 * m.n_layers * m.d_model * m.d_model if m.arch == "gpt" else 0


def muon_flops(m: ModelConfig, ns_steps: int = 5) -> float:
    """FLOPs of Muon's Newton-Schulz iterations per optimizer step: for each block matrix of sides a <= b,
    X X^T (2 a^2 b), A A (2 a^3) and B X (2 a^2 b) per iteration."""
    C = m.d_model
    sides = [(C, 3 * C), (C, C), (C, 4 * C), (C, 4 * C)]  # qkv, attention output, MLP in, MLP out
    return float(ns_steps * m.n_layers * sum(4 * a * a * b + 2 * a**3 for a, b in sides))


def _gates(m: ModelConfig) -> int:
    """Gates of a recurrent layer: input, forget, cell, output (LSTM); reset, update, new (GRU)."""
    return 4 if m.arch == "lstm" else 3


def matmul_params(m: ModelConfig) -> int:
    """Weights used in matrix multiplies per token: blocks (or recurrent gates) plus the output head (and the
    copy head's q, k and gate projections)."""
    C = m.d_model
    per_layer = 12 * C * C if m.arch == "gpt" else 2 * _gates(m) * C * C
    copy = 2 * C * C + C if m.copy_head else 0
    return m.n_layers * per_layer + m.vocab_size * C + copy


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


def _memory_terms(m: ModelConfig, batch: int, device_type: str, precision: str) -> dict[str, Any]:
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


def memory_estimate(m: ModelConfig, t: TrainConfig, device_type: str, precision: str,
                    available: int | None = None) -> MemoryEstimate:
    """Peak bytes of training `m` with `t` on a device of this type (see the module docstring)."""
    P = count_params(m)
    weights, gradients, optimizer = 4 * P, 4 * P, 8 * P
    if t.optimizer == "muon" and m.arch == "gpt":  # Muon keeps one momentum buffer per matrix, AdamW two moments
        optimizer -= 4 * hidden_matrix_params(m)
    terms = _memory_terms(m, t.batch_size, device_type, precision)
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


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new training run on `device` now."""
    try:
        if device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            # Blocks torch has cached but not handed out are free for this process too.
            return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
        if device.type == "mps" and hasattr(torch.mps, "recommended_max_memory"):
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # a query that fails must not break the estimate
        return None


# --------------------------------------------------------------------------- device timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Temporarily use the run's CPU thread count (timings depend on it)."""
    old = torch.get_num_threads()
    if n and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


@contextmanager
def _tf32(device: torch.device) -> Iterator[None]:
    """The trainer enables TF32 on CUDA; time under the same setting, then put it back."""
    if device.type != "cuda":
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def device_throughput(device: torch.device, precision: str, threads: int | None = None) -> tuple[float, float]:
    """Measured (matmul FLOP/s, copy bytes/s) of `device` in `precision`, timed once per process.

    On CPU it is measured with `threads` torch threads (default: torch's current setting).
    """
    key = _throughput_key(device, precision, threads)
    with _LOCK:
        if key not in _THROUGHPUT:
            with _threads(threads):
                _THROUGHPUT[key] = _measure_throughput(device, precision)
        return _THROUGHPUT[key]


def _throughput_key(device: torch.device, precision: str, threads: int | None) -> tuple[str, str, int]:
    n = (threads or torch.get_num_threads()) if device.type == "cpu" else 0
    return (str(device), precision, n)


def _measure_throughput(device: torch.device, precision: str) -> tuple[float, float]:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    n, reps = (1024, 6) if device.type == "cpu" else (4096, 5)  # best of several: the machine may be shared
    with torch.inference_mode(), _tf32(device):
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        best = math.inf
        for i in range(reps + 1):
            _sync(device)
            t0 = time.perf_counter()
            a @ b
            _sync(device)
            if i:  # the first call pays one-time setup
                best = min(best, time.perf_counter() - t0)
        flops = 2 * n**3 / best
        elems = 16 * 2**20 if device.type == "cpu" else 64 * 2**20
        src = torch.ones(elems, device=device)
        dst = torch.empty_like(src)
        best = math.inf
        for i in range(reps + 1):
            _sync(device)
            t0 = time.perf_counter()
            dst.copy_(src)
            _sync(device)
            if i:
                best = min(best, time.perf_counter() - t0)
        bandwidth = 2 * src.numel() * src.element_size() / best
    return flops, bandwidth


def _nominal_throughput(device: torch.device, threads: int | None) -> tuple[float, float]:
    flops, bandwidth = NOMINAL_THROUGHPUT.get(device.type, NOMINAL_THROUGHPUT["cpu"])
    if device.type == "cpu":
        flops *= threads or torch.get_num_threads()
    return flops, bandwidth


def _rough_timing(m: ModelConfig, t: TrainConfig, device: torch.device, precision: str,
                  throughput: tuple[float, float], method: str) -> _Timing:
    """Step time from FLOPs, memory traffic and op dispatch (used when timing real steps is too costly)."""
    flops, bandwidth = throughput
    util = UTILISATION.get(device.type, 0.3)
    tokens = t.batch_size * m.seq_len
    terms = _memory_terms(m, t.batch_size, device.type, precision)
    if m.arch == "gpt":
        traffic = TRAFFIC_PASSES * (terms["activations"] + terms["logits"])
        ops = 70 * m.n_layers + 50 + (30 if m.copy_head else 0)
    else:  # one fused oneDNN/cuDNN kernel per LSTM layer and direction of the pass
        traffic = 2 * terms["activations"] + TRAFFIC_PASSES * terms["logits"]
        ops = 10 * m.n_layers + 50
        if m.arch == "gru" and device.type == "cpu":
            ops += 5 * m.seq_len * m.n_layers  # the CPU runs a GRU cell by cell: ~5 ops per cell (fitted, torch 2.13)
    fwd_bwd = flops_per_token(m) * tokens / (flops * util) + traffic / bandwidth + ops * OP_OVERHEAD_S
    P = count_params(m)
    # Fused AdamW reads p, g, m, v and writes p, m, v; clipping reads and rescales g: ~40 bytes per parameter.
    opt = 40 * P / bandwidth + 30 * OP_OVERHEAD_S
    if t.optimizer == "muon" and m.arch == "gpt":  # Newton-Schulz: matmuls and ~20 small ops per matrix
        opt += muon_flops(m) / (flops * util) + 4 * m.n_layers * 20 * OP_OVERHEAD_S
    # A decoded token reads every weight once and runs ~10 small kernels per layer (the fast decoder).
    token = 2 * matmul_params(m) / (flops * util) + 4 * P / bandwidth + (5 + 10 * m.n_layers) * OP_OVERHEAD_S / 4
    return _Timing(forward=fwd_bwd / 3, backward=2 * fwd_bwd / 3, optimizer=opt, token=token,
                   calibrated=False, method=method)


def _run_config(m: ModelConfig, t: TrainConfig) -> RunConfig:
    return RunConfig(data=DataConfig(corpus=Path("unused.txt")), model=m, train=t)


def random_batch(m: ModelConfig, batch_size: int, device: torch.device | str) -> Batch:
    """Random token ids of one micro-batch: timing and memory do not depend on the values."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, m.vocab_size, (batch_size, m.seq_len), generator=gen)
    y = torch.randint(0, m.vocab_size, (batch_size, m.seq_len), generator=gen)
    return Batch(x.to(device), y.to(device))


def _time_steps(m: ModelConfig, t: TrainConfig, device: torch.device, precision: str) -> _Timing:
    """Time 1 warmup + TIMED_STEPS training steps of this exact model as the Trainer runs them (median)."""
    from genai_core.model import build_model
    from genai_core.train.optim import TrainStep, make_optimizer

    t1 = t.model_copy(update={"grad_accum_steps": 1})
    fork_devices = [device.index or 0] if device.type in ("cuda", "mps") else []
    fork_type = device.type if device.type in ("cuda", "mps") else "cuda"
    fwd, bwd, opt_t, tok = [], [], [], []
    with torch.random.fork_rng(devices=fork_devices, device_type=fork_type), _threads(t.num_threads), \
            _tf32(device), torch.inference_mode(False), torch.enable_grad():
        torch.manual_seed(t.seed)  # inside fork_rng: the caller's random state is left untouched
        model = build_model(m).to(device)
        model.train()
        step = TrainStep(model, make_optimizer(model, t1, device), t1, device, precision)
        batch = random_batch(m, t.batch_size, device)

        def record(forward: float, backward: float, optimizer: float) -> None:
            fwd.append(forward)
            bwd.append(backward)
            opt_t.append(optimizer)

        step(lambda: batch)  # pays lazy initialisation (kernels, optimizer state): not recorded
        for _ in range(TIMED_STEPS):
            step(lambda: batch, timer=record)
        del step
        # One decoded token, as periodic samples produce them (the fast decoder when the model has one).
        model.eval()
        with torch.no_grad():
            # A copy-head GPT has no fast decoder (generation runs it through GPT.forward's cache).
            decoder = model.decoder(1) if hasattr(model, "decoder") and not m.copy_head else None
            cache = None if decoder is not None else model.new_cache(1, device)
            ids = torch.zeros(1, 1, dtype=torch.long, device=device)
            for i in range(min(4, m.seq_len)):
                _sync(device)
                t0 = time.perf_counter()
                if decoder is not None:
                    decoder.step(0)
                else:
                    model(ids, cache=cache, last_only=True)
                _sync(device)
                if i:
                    tok.append(time.perf_counter() - t0)
        del model, decoder, cache
    if device.type == "cuda":
        torch.cuda.empty_cache()  # give the timing model's blocks back before the real run
    return _Timing(forward=statistics.median(fwd), backward=statistics.median(bwd),
                   optimizer=statistics.median(opt_t), token=statistics.median(tok) if tok else 0.0,
                   calibrated=True, method=f"timed {TIMED_STEPS} training steps of this model on {device}")


def _calibration_key(m: ModelConfig, t: TrainConfig, device: torch.device, precision: str) -> tuple[Any, ...]:
    # Dropout's value does not change the cost, only whether it is on (it selects the attention kernel).
    shape = (m.arch, m.vocab_size, m.d_model, m.n_heads, m.n_layers, m.seq_len, m.dropout > 0,
             m.pos_encoding, m.norm, m.qk_norm, m.mlp, m.bias, m.tie_embeddings, m.copy_head,
             m.logit_softcap is not None)
    return (*shape, t.batch_size, t.grad_clip > 0, t.compile, t.optimizer, precision, str(device),
            t.num_threads or torch.get_num_threads())


def _timing(m: ModelConfig, t: TrainConfig, device: torch.device, precision: str, mem: MemoryEstimate,
            calibrate: bool, *, busy: float = 0.0, background: bool = False) -> tuple[_Timing, bool, bool]:
    """The step timing, whether it came from the cache, and whether a background calibration is pending."""
    key = _calibration_key(m, t, device, precision)
    with _LOCK:
        hit = _CALIBRATIONS.get(key)
        pending = key in _PENDING
    if hit is not None:
        return hit, True, False
    if calibrate and busy >= BUSY_CORES:
        # Steps timed on a loaded machine read several times too slow, and would stay cached: use the
        # throughput model, with the device's matmul speed measured (once) rather than a nominal guess.
        device_throughput(device, precision, t.num_threads)
        calibrate = False
    if calibrate and background:
        rough = _timing(m, t, device, precision, mem, False)[0]
        if not pending:
            with _LOCK:
                _PENDING.add(key)

            def work() -> None:
                try:
                    warm_up(str(device), precision, t.num_threads)  # one-time costs, not in the timed steps
                    _timing(m, t, device, precision, mem, True)
                finally:
                    with _LOCK:
                        _PENDING.discard(key)

            threading.Thread(target=work, name="genai-calibration", daemon=True).start()
        return rough, False, True
    if not calibrate:
        with _LOCK:
            measured = _THROUGHPUT.get(_throughput_key(device, precision, t.num_threads))
        if measured is not None:
            return (_rough_timing(m, t, device, precision, measured, _throughput_method(device, measured)), False,
                    pending)
        nominal = _nominal_throughput(device, t.num_threads)
        return (_rough_timing(m, t, device, precision, nominal,
                              f"nominal {nominal[0] / 1e9:,.0f} GFLOP/s for {device.type} (not calibrated)"), False,
                pending)
    measured = device_throughput(device, precision, t.num_threads)
    rough = _rough_timing(m, t, device, precision, measured, _throughput_method(device, measured))
    cheap = rough.forward + rough.backward + rough.optimizer < CALIBRATE_BELOW_S
    room = mem.available is None or mem.total <= CALIBRATE_MEMORY_SHARE * mem.available
    if not (cheap and room):
        reason = "too slow to time here" if not cheap else "too big to time here"
        timing = _Timing(rough.forward, rough.backward, rough.optimizer, rough.token, False,
                         f"{rough.method} ({reason})")
    else:
        with _LOCK:  # one calibration at a time: two at once would slow each other down
            hit = _CALIBRATIONS.get(key)
            if hit is not None:
                return hit, True, False
            try:
                timing = _time_steps(m, t, device, precision)
            except Exception as e:  # e.g. out of memory: an estimate must never take the app down
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                timing = _Timing(rough.forward, rough.backward, rough.optimizer, rough.token, False,
                                 f"{rough.method} (timing failed: {type(e).__name__})")
            if t.compile and timing.calibrated:
                # Compiling would cost far more than the calibration; compiled steps are usually faster.
                timing = replace(timing, method=timing.method + " without torch.compile")
            _CALIBRATIONS[key] = timing
        return timing, False, False
    with _LOCK:
        _CALIBRATIONS[key] = timing
    return timing, False, False


def _history_timing(m: ModelConfig, t: TrainConfig, device: torch.device, precision: str,
                    runs_root: Path) -> _Timing | None:
    """The step time runs of this exact shape measured while they trained on this machine (the trainer's own
    tokens/s, evaluations excluded), split into forward/backward/optimizer as the throughput model splits it.
    None when no such run has logged enough steps."""
    from genai_core.runs.folder import list_runs

    rates: list[float] = []
    source = ""
    for run in list_runs(runs_root):
        try:
            cfg = run.config()
            status = run.read_status_raw()
        except Exception:  # a damaged run teaches nothing about speed
            continue
        same = (cfg.model.model_copy(update={"dropout": 0.0}) == m.model_copy(update={"dropout": 0.0})
                and (cfg.model.dropout > 0) == (m.dropout > 0) and cfg.train.batch_size == t.batch_size
                and cfg.train.grad_accum_steps == t.grad_accum_steps and cfg.train.optimizer == t.optimizer
                and bool(cfg.train.compile) == bool(t.compile) and status.get("precision") == precision
                and status.get("device", "").split(":")[0] == device.type
                and (device.type != "cpu" or status.get("threads") == t.num_threads)
                and status.get("world_size", 1) == 1)
        if not same:
            continue
        tps = [r["tokens_per_s"] for r in run.metrics()[1:] if r.get("tokens_per_s")]  # the first holds warm-up
        if len(tps) >= 3:
            rates.append(statistics.median(tps[-10:]))
            source = source or run.name
    if not rates:
        return None
    sec_step = t.batch_size * m.seq_len * t.grad_accum_steps / statistics.median(rates)
    rough = _rough_timing(m, t, device, precision, _nominal_throughput(device, t.num_threads), "")
    scale = sec_step / max(t.grad_accum_steps * (rough.forward + rough.backward) + rough.optimizer, 1e-12)
    return _Timing(rough.forward * scale, rough.backward * scale, rough.optimizer * scale, rough.token, True,
                   f"measured while {source}{f' and {len(rates) - 1} more' if len(rates) > 1 else ''} "
                   f"trained on this machine (same shape and settings)")


def _throughput_method(device: torch.device, measured: tuple[float, float]) -> str:
    return (f"FLOPs / ({measured[0] / 1e9:,.0f} GFLOP/s measured matmul on {device} "
            f"x {UTILISATION.get(device.type, 0.3):.0%} utilisation)")


def warm_up(device: str = "auto", precision: str = "auto", threads: int | None = None) -> None:
    """Pay the one-time costs of the first calibration ahead of time (e.g. in a thread at app start).

    Creating the first fused AdamW imports torch's compiler stack (~1 s, once per process), and the
    device throughput is timed once; after this a calibration of a small model takes a few tenths
    of a second.
    """
    dev = resolve_device(device)
    p = torch.nn.Parameter(torch.zeros(2, device=dev))
    torch.optim.AdamW([p], fused=dev.type in ("cuda", "cpu"))
    device_throughput(dev, resolve_precision(precision, dev), threads)


def clear_cache() -> None:
    """Forget every calibration and throughput measurement (e.g. after the hardware's load changed)."""
    with _LOCK:
        _CALIBRATIONS.clear()
        _THROUGHPUT.clear()


# --------------------------------------------------------------------------- the estimate
def estimate(config: RunConfig | ModelConfig, device: str = "auto", *, train: TrainConfig | None = None,
             train_tokens: int | None = None, calibrate: bool = True, world_size: int = 1,
             runs_root: Path | None = None, background: bool = False,
             window_tokens: float | None = None) -> Estimate:
    """Parameters, peak memory, FLOPs and time of training `config` on `device`.

    `config` is a RunConfig, or a ModelConfig with `train` (default TrainConfig()). `device="auto"`
    uses the config's own device setting. `train_tokens` (tokens in the training split) gives
    steps per epoch; without it only a `max_steps` run has a total.

    The time, best source first: runs of the same shape under `runs_root` that trained on this machine
    (their measured tokens/s); an earlier calibration in this process; with `calibrate`, timing real
    steps now when cheap (see `CALIBRATE_BELOW_S`) and the machine is not busy (`BUSY_CORES`), in a
    background thread with `background` (the estimate then says `pending`); else the measured device
    throughput. `window_tokens` is the average width of a batch when it is less than seq_len (a QA
    fine-tune pads each batch to its longest example: `QAStore.mean_window_tokens`); the step time is
    scaled to it. Raises GenAIError for an unavailable device or precision.
    """
    if isinstance(config, RunConfig):
        m, t = config.model, config.train
    else:
        m, t = config, train or TrainConfig()
    dev = resolve_device(t.device if device == "auto" else device)
    precision = resolve_precision(t.precision, dev)
    if dev.type == "cpu":  # the thread count a run started now would get (the time depends on it)
        t = t.model_copy(update={"num_threads": resolve_threads(t.num_threads, dev)})
    mem = memory_estimate(m, t, dev.type, precision, available_memory(dev))
    params = count_params(m)

    tokens_per_step = t.batch_size * m.seq_len * t.grad_accum_steps * world_size
    fpt = flops_per_token(m)
    busy = busy_cores() if dev.type == "cpu" and calibrate else 0.0
    history = _history_timing(m, t, dev, precision, Path(runs_root)) if runs_root is not None else None
    if history is not None:
        timing, cached, pending = history, False, False
    else:
        timing, cached, pending = _timing(m, t, dev, precision, mem, calibrate, busy=busy, background=background)
    width = min(1.0, window_tokens / m.seq_len) if window_tokens and history is None else 1.0
    sec_step = t.grad_accum_steps * (timing.forward + timing.backward) * width + timing.optimizer

    spe = steps_per_epoch(train_tokens, t.batch_size, m.seq_len, t.grad_accum_steps, world_size) \
        if train_tokens else None
    if t.max_steps is not None:
        total_steps: int | None = t.max_steps
    elif spe is not None:
        total_steps = max(1, math.ceil((t.epochs or 1.0) * spe))  # RunConfig's default length is one epoch
    else:
        total_steps = None
    total_seconds = overhead = None
    if total_steps is not None:
        # The trainer evaluates on log steps that are also evaluation steps, and always at the end.
        n_evals = (total_steps - 1) // math.lcm(t.log_interval, t.eval_interval) + 1
        n_samples = ((total_steps - 1) // (t.sample_interval or t.eval_interval) + 1) if t.sample_tokens else 0
        overhead = n_evals * t.eval_batches * timing.forward + n_samples * t.sample_tokens * timing.token
        total_seconds = total_steps * sec_step + overhead
    compiled = resolve_compile(t.compile, dev, m.d_model, "lm", total_steps)
    if compiled and total_seconds is not None and overhead is not None:
        # Compiling costs its time once; the compiled steps (measured 0.8x eager at d_model 256) are not
        # timed here, so the estimate errs long.
        total_seconds += COMPILE_SECONDS
        overhead += COMPILE_SECONDS

    fits, message = _fit_message(mem, dev)
    return Estimate(
        arch=m.arch, device=str(dev), precision=precision, threads=t.num_threads if dev.type == "cpu" else None,
        compiled=compiled,
        params=params, params_matmul=matmul_params(m),
        memory=mem, tokens_per_step=tokens_per_step, flops_per_token=fpt,
        flops_per_step=fpt * t.batch_size * m.seq_len * t.grad_accum_steps,
        seconds_per_step=sec_step, tokens_per_second=tokens_per_step / sec_step if sec_step > 0 else math.inf,
        steps_per_epoch=spe, seconds_per_epoch=spe * sec_step if spe is not None else None,
        total_steps=total_steps, total_seconds=total_seconds, overhead_seconds=overhead,
        calibrated=timing.calibrated, pending=pending, busy_cores=busy, cached=cached,
        method=timing.method + (" (cached)" if cached else ""), fits=fits,
        message=message or _busy_message(busy),
    )


def _busy_message(busy: float) -> str:
    if busy < BUSY_CORES:
        return ""
    return (f"the machine is busy: other programs keep about {busy:.1f} of its {cpu_cores()} cores working, so "
            "training will be slower than this (and no step was timed now)")


def _fit_message(mem: MemoryEstimate, device: torch.device) -> tuple[bool, str]:
    if mem.available is None:
        return True, ""
    where = "in RAM" if device.type == "cpu" else f"on {device}"
    if mem.total <= TIGHT_SHARE * mem.available:
        return True, ""
    if mem.total <= mem.available:
        return True, (f"needs {format_bytes(mem.total)} of the {format_bytes(mem.available)} free {where}: "
                      "other programs may push it out of memory")
    batch_part = max(mem.activations, mem.logits) + mem.workspace
    state_part = mem.weights + mem.gradients + mem.optimizer
    if mem.logits >= mem.activations and batch_part >= state_part:
        hint = "lower batch_size or seq_len, or use a smaller vocabulary (the batch x seq_len x vocab logits dominate)"
    elif batch_part >= state_part:
        hint = "lower batch_size or seq_len (grad_accum_steps keeps the effective batch)"
    else:
        hint = "lower d_model or n_layers (weights, gradients and AdamW state dominate)"
    return False, f"needs {format_bytes(mem.total)} but {format_bytes(mem.available)} is free {where}: {hint}"


# --------------------------------------------------------------------------- measurement (tests, benchmarks)
def _measure_child() -> None:
    """Body of the child process of `measure_cpu_peak_memory`: argv = [config JSON, steps]."""
    import json
    import resource
    import sys

    from genai_core.model import build_model
    from genai_core.train.optim import TrainStep, make_optimizer

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    cfg = RunConfig.model_validate_json(sys.argv[1])
    steps = int(sys.argv[2])
    m, t = cfg.model, cfg.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    device = torch.device("cpu")
    torch.manual_seed(t.seed)
    batch = random_batch(m, t.batch_size, device)
    baseline = rss()
    model = build_model(m)
    step = TrainStep(model, make_optimizer(model, t, device), t, device, resolve_precision(t.precision, device))
    model.train()
    for _ in range(steps):
        step(lambda: batch).loss.item()
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KB on Linux
    print(json.dumps({"baseline": baseline, "peak": hwm, "measured": hwm - baseline, "ru_maxrss": maxrss}))



def measure_cpu_peak_memory(config: RunConfig | ModelConfig, train: TrainConfig | None = None, *, steps: int = 3,
                            env: dict[str, str] | None = None, timeout: float = 300.0) -> dict[str, int]:
    """Measured peak memory of `steps` CPU training steps, in a fresh interpreter (Linux).

    The child imports torch, builds a random batch and records its resident memory (`baseline`),
    then builds the model and fused AdamW and trains as the Trainer does; `measured` is the peak
    resident memory minus the baseline. The ground truth that tests and benchmarks hold
    `estimate(...).memory.total` against.

    The peak is the child's VmHWM, the high-water mark of its own address space. `ru_maxrss` (also
    returned) is not usable here: Linux folds the RSS the process had at fork -- a copy of its
    parent's -- into it at exec, so a child of a 600 MB pytest or app process starts with a
    600 MB "peak" (seen: a 141 MB run read as 283 MB).
    """
    import json
    import subprocess
    import sys

    cfg = config if isinstance(config, RunConfig) else _run_config(config, train or TrainConfig())
    root = str(Path(__file__).resolve().parents[1])
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = root + os.pathsep + child_env.get("PYTHONPATH", "")
    script = "from genai_core.train.estimates import _measure_child; _measure_child()"
    proc = subprocess.run([sys.executable, "-c", script, cfg.model_dump_json(), str(steps)],
                          capture_output=True, text=True, env=child_env, cwd=root, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


__all__ = [
    "Estimate",
    "MemoryEstimate",
    "attention_path",
    "available_memory",
    "clear_cache",
    "count_params",
    "device_throughput",
    "estimate",
    "flops_per_token",
    "matmul_params",
    "measure_cpu_peak_memory",
    "memory_estimate",
    "warm_up",
]
