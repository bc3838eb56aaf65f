"""Optimizers, the learning-rate schedule, and the one training step.

`TrainStep` is the training step of the whole engine: the trainer runs it, the estimates time it and
the benchmarks call it, so a knob added here (an optimizer, precision, clipping) is the same
everywhere. It does what one optimizer step of nanoGPT does: micro-batches under autocast, the
backward pass (through a GradScaler for fp16), gradient clipping, the optimizer step and zeroing.

Two optimizers:
- `adamw`: AdamW (fused on CPU and CUDA) for every parameter, weight decay on matrices only.
- `muon`: `Muon` below (Jordan et al. 2024: the momentum of each weight matrix replaced by the nearest
  semi-orthogonal matrix, via Newton-Schulz iterations) for the 2-D weights inside the transformer blocks,
  and AdamW for what is not a hidden matrix (embeddings, the head, norms, biases, the copy head). Muon's
  matrices take no weight decay: with its learning rate (~20x AdamW's) a decoupled decay would shrink them
  by e^-4 over a 2,000-step run.

Optimizer state goes to safetensors as flat named tensors (`state_tensors`), never pickled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from genai_core.config import RunConfig, TrainConfig
from genai_core.devices import autocast, muon_precision_choice
from genai_core.errors import CheckpointError

MUON_MOMENTUM = 0.95
MUON_NS_STEPS = 5
"""Newton-Schulz iterations per step. 3 made a step ~9% cheaper on 2 CPU cores but reached classic's final loss
50 steps later (500 vs 450, Shakespeare 4x4x128): no net gain, so Muon's own default stays."""
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
"""The quintic's (a, b, c) of Jordan et al. (torch.optim.Muon's too): the steepest slope at zero that still
brings every singular value into about [0.7, 1.2] in five iterations."""
NS_EPS = 1e-7
NS_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def newton_schulz(G: torch.Tensor, steps: int, dtype: torch.dtype, eps: float = NS_EPS) -> torch.Tensor:
    """Approximately the nearest semi-orthogonal matrix to each `G[i]` (U V^T of its SVD, with the singular
    values pushed near 1 rather than to 1), for a batch `G` of same-shape matrices, computed in `dtype`.

    The iteration of torch.optim.Muon and Keller Jordan's reference, batched: one bmm per product for all
    the matrices of a shape instead of one mm per matrix, and in a dtype of the caller's choice (torch's is
    always bf16, which CPUs without native bf16 run 3-60x slower than fp32).
    """
    a, b, c = NS_COEFFICIENTS
    X = G.to(dtype)
    tall = G.size(-2) > G.size(-1)
    if tall:  # iterate on the wide orientation: X @ X^T is then the smaller Gram matrix
        X = X.mT
    X = X / X.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    if dtype == torch.float32 and X.size(-1) >= GRAM_MIN_ASPECT * X.size(-2):
        X = _gram_newton_schulz(X, steps)
    else:
        for _ in range(steps):
            A = X @ X.mT
            B = torch.baddbmm(A, A, A, beta=b, alpha=c)
            X = torch.baddbmm(X, B, X, beta=a)
    return X.mT if tall else X


GRAM_MIN_ASPECT = 2
"""Width / height from which `_gram_newton_schulz` does fewer FLOPs than the plain iteration (4 d^2 k + 36 d^3
against 5 (4 d^2 k + 2 d^3) for a d x k matrix: 42% fewer at k = 4d, the MLP's; more at k = d)."""


def _gram_newton_schulz(X: torch.Tensor, steps: int) -> torch.Tensor:
    """The same iteration on the small Gram matrix: each step is X <- P X with P = aI + bA + cA^2 a polynomial of
    A = X X^T (d x d), so X_T = P_{T-1} ... P_0 X_0 and A_{t+1} = P A_t P (P is symmetric and commutes with A_t).
    Only d x d products inside the loop, and the wide d x k matrix is touched twice. Equal to the plain iteration
    in exact arithmetic; in fp32 the two differ by rounding. fp32 only: the bf16 path stays torch.optim.Muon's
    iteration, bit for bit."""
    a, b, c = NS_COEFFICIENTS
    A = X @ X.mT
    eye = torch.eye(A.size(-1), dtype=A.dtype, device=A.device)
    Q: torch.Tensor | None = None
    for i in range(steps):
        P = torch.baddbmm(A, A, A, beta=b, alpha=c) + a * eye
        Q = P if Q is None else P @ Q
        if i < steps - 1:
            A = P @ A @ P
    return Q @ X if Q is not None else X


class Muon(torch.optim.Optimizer):
    """Muon: SGD with Nesterov momentum whose update is orthogonalised by `newton_schulz`.

    The update of torch.optim.Muon (momentum buffer `buf = lerp(buf, g, 1 - momentum)`, Nesterov
    `lerp(g, buf, momentum)`, the learning rate scaled by sqrt(max(1, rows / cols)), decoupled weight decay),
    with two changes that make it fast on any machine: the Newton-Schulz iteration runs in `ns_dtype`
    (`TrainConfig.muon_precision`), and the matrices of one shape are orthogonalised together in one batch.
    Its state is one `momentum_buffer` per matrix, as torch's, so checkpoints of either load into the other.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, momentum: float = MUON_MOMENTUM,
                 nesterov: bool = True, ns_steps: int = MUON_NS_STEPS, ns_dtype: torch.dtype = torch.bfloat16,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov, "ns_steps": ns_steps,
                                  "weight_decay": weight_decay})
        self.ns_dtype = ns_dtype
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError(f"Muon takes 2-D matrices; got a parameter of shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            bufs = [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p)) for p in params]
            momentum = group["momentum"]
            torch._foreach_lerp_(bufs, grads, 1 - momentum)
            updates = torch._foreach_lerp(grads, bufs, momentum) if group["nesterov"] else bufs
            by_shape: dict[torch.Size, list[int]] = {}
            for i, p in enumerate(params):
                by_shape.setdefault(p.shape, []).append(i)
            for shape, idx in by_shape.items():
                ortho = newton_schulz(torch.stack([updates[i] for i in idx]), group["ns_steps"], self.ns_dtype)
                ortho = ortho.to(params[idx[0]].dtype).unbind(0)
                same = [params[i] for i in idx]
                if group["weight_decay"]:
                    torch._foreach_mul_(same, 1 - group["lr"] * group["weight_decay"])
                scaled_lr = group["lr"] * math.sqrt(max(1.0, shape[0] / shape[1]))
                torch._foreach_add_(same, ortho, alpha=-scaled_lr)


def lr_at(step: int, peak: float, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to `peak`, then cosine decay to `peak * min_ratio` at `total`."""
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    if total <= warmup:
        return peak
    ratio = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * ratio)))


def is_hidden_matrix(name: str, p: torch.Tensor) -> bool:
    """A 2-D weight inside a transformer block (`h.<i>.…`): what Muon optimizes."""
    return p.dim() == 2 and name.startswith("h.")


class Optimizers:
    """One or two torch optimizers that step together (Muon + AdamW, or AdamW alone).

    Every param group keeps its own peak learning rate (`peak_lr`); `set_lr_scale` sets each group to
    its peak times the schedule's factor, so the two optimizers follow one schedule.
    """

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers
        for opt in optimizers:
            for g in opt.param_groups:
                g.setdefault("peak_lr", g["lr"])

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def set_lr_scale(self, scale: float) -> None:
        for g in self.param_groups:
            g["lr"] = g["peak_lr"] * scale

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_tensors(self, names: dict[int, str]) -> dict[str, torch.Tensor]:
        """Every optimizer's state as named tensors, `<param name>::<state key>` (safetensors, no pickle)."""
        out: dict[str, torch.Tensor] = {}
        for opt, p in self._params():
            for key, val in opt.state.get(p, {}).items():
                out[f"{names[id(p)]}::{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
        return out

    def load_state_tensors(self, names: dict[int, str], tensors: dict[str, torch.Tensor]) -> None:
        """Restore what `state_tensors` saved, checking each tensor's shape against its parameter."""
        known = {"step", "exp_avg", "exp_avg_sq", "momentum_buffer"}
        for opt, p in self._params():
            name = names[id(p)]
            state: dict[str, torch.Tensor] = {}
            for key in known:
                t = tensors.get(f"{name}::{key}")
                if t is None:
                    continue
                if key != "step" and t.shape != p.shape:
                    raise CheckpointError(f"optimizer state {name}::{key} has shape {tuple(t.shape)}, "
                                          f"expected {tuple(p.shape)}")
                state[key] = t.to(p.device, torch.float32 if key == "step" else p.dtype)
            if state:
                opt.state[p] = state

    def _params(self) -> Iterator[tuple[torch.optim.Optimizer, torch.Tensor]]:
        """Every (optimizer, parameter) pair, in a fixed order."""
        for opt in self.optimizers:
            for group in opt.param_groups:
                yield from ((opt, p) for p in group["params"])


def make_optimizer(model: torch.nn.Module, config: RunConfig | TrainConfig, device: torch.device,
                   muon_precision: str | None = None) -> Optimizers:
    """The optimizer(s) `config.optimizer` names, over the model's trainable parameters. `muon_precision` is
    the Newton-Schulz dtype a run resolved already (the trainer's); by default `config`'s is resolved here."""
    t = config.train if isinstance(config, RunConfig) else config
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    fused = device.type in ("cuda", "cpu")
    rest = named
    optimizers: list[torch.optim.Optimizer] = []
    if t.optimizer == "muon":
        hidden = [p for n, p in named if is_hidden_matrix(n, p)]
        rest = [(n, p) for n, p in named if not is_hidden_matrix(n, p)]
        if hidden:
            if muon_precision is None:
                width = min(min(p.shape) for p in hidden)  # d_model: every block matrix has it on one side
                muon_precision = muon_precision_choice(t.muon_precision, device, width).value
            optimizers.append(Muon(hidden, lr=t.muon_lr, ns_dtype=NS_DTYPES[muon_precision]))
    decay = [p for _, p in rest if p.dim() >= 2]
    no_decay = [p for _, p in rest if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizers.append(torch.optim.AdamW([g for g in groups if g["params"]], lr=t.lr, betas=(t.beta1, t.beta2),
                                        fused=fused))
    return Optimizers(optimizers)


@dataclass
class StepResult:
    loss: torch.Tensor
    """Mean loss over the micro-batches (a 0-d tensor on the device; `.item()` syncs)."""
    grad_norm: torch.Tensor | None
    """Global gradient norm before clipping (None when clipping is off)."""


class TrainStep:
    """One optimizer step: `grad_accum_steps` micro-batches, backward, clip, step, zero.

    `model` is what the forward pass runs (possibly DDP-wrapped and/or compiled); under DDP (`ddp`, the
    DistributedDataParallel module, which may sit inside a compiled `model`) gradients are all-reduced
    on the last micro-batch only. `timer`, when given, receives (forward, backward, optimizer) seconds of
    each micro-batch / step, with the device synchronised around each phase (the estimates time steps
    this way).
    """

    def __init__(self, model: torch.nn.Module, optimizer: Optimizers, train: TrainConfig, device: torch.device,
                 precision: str, ddp: DDP | None = None) -> None:
        self.model = model
        self.ddp = ddp
        self.optimizer = optimizer
        self.train = train
        self.device = device
        self.precision = precision
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def __call__(self, next_batch: Callable[[], Any], lr_scale: float = 1.0,
                 timer: Callable[[float, float, float], None] | None = None) -> StepResult:
        t = self.train
        self.optimizer.set_lr_scale(lr_scale)
        accum = t.grad_accum_steps
        loss_sum = torch.zeros((), device=self.device)
        clock = _Clock(self.device, timer is not None)
        for micro in range(accum):
            b = next_batch()
            last = micro == accum - 1
            sync = self.ddp.no_sync() if (not last and self.ddp is not None) else nullcontext()
            with sync:
                clock.start()
                with autocast(self.device, self.precision):
                    _, loss = self.model(b.x, b.targets)
                    loss = loss / accum
                forward = clock.lap()
                self.scaler.scale(loss).backward()
                backward = clock.lap()
            loss_sum += loss.detach()
            if timer is not None and not last:
                timer(forward, backward, 0.0)
        grad_norm = None
        if t.grad_clip > 0:
            for opt in self.optimizer.optimizers:
                self.scaler.unscale_(opt)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, t.grad_clip)
        for opt in self.optimizer.optimizers:
            self.scaler.step(opt)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if timer is not None:
            loss_sum.item()  # the trainer reads the loss every step (a device sync)
            timer(forward, backward, clock.lap())
        return StepResult(loss_sum, grad_norm)

    def scaler_state(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.precision == "fp16" else None

    def load_scaler_state(self, state: dict[str, Any] | None) -> None:
        if state is not None and self.precision == "fp16":
            self.scaler.load_state_dict(state)


class _Clock:
    """Lap times with the device synchronised at each reading (or nothing at all when off)."""

    def __init__(self, device: torch.device, on: bool) -> None:
        self.device, self.on, self.t = device, on, 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        if self.on:
            self.t = self._now()

    def lap(self) -> float:
        if not self.on:
            return 0.0
        now = self._now()
        dt, self.t = now - self.t, now
        return dt
