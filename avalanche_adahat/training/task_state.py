"""What the plugin keeps of the task it trains, made anew at the start of every task.

:class:`TaskState` holds the task's label and step counters, the model's structure
(:class:`ModelStructure`), the task's embeddings, the sparsity map and rate plan,
and each step's gates, ratios and snapshots; its methods are the steps of
docs/ALGORITHM.md §5.1 that read or write only these. :class:`TaskAttribute` shows
one of them as a plugin attribute (``plugin.task_label``, ``plugin.layer_sparsity``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core import functional as F
from ..core.step import StepMaths
from ..nn.mask import CoveredParameter
from ..nn.module import HATModule
from .rate_plan import RatePlan

__all__ = ["ModelStructure", "TaskAttribute", "TaskState"]


class ModelStructure:
    """A model's masks, covered parameters and mask indices, looked up once per task
    instead of once per hook (each lookup walks ``model.modules()``)."""

    def __init__(self, model: HATModule):
        self.model_id = id(model)
        self.masks = model.hat_masks()
        self.covered: list[CoveredParameter] = model.covered_parameters()
        self.mask_index = {id(m): i for i, m in enumerate(self.masks)}


class TaskState:
    """The state of the task being trained (a fresh one before the first task)."""

    def __init__(self, s_max: float, task_label: int | None = None, num_previous_tasks: int = 0):
        self.task_label = task_label
        self.num_previous_tasks = num_previous_tasks
        self.task_steps = 0  # optimizer steps taken in the task
        self.num_batches = 1
        self.batch = 0
        self.s = s_max  # the annealed gate scale of the current step (HAT Eq. 3)
        self.structure: ModelStructure | None = None
        self.embeddings: list[Tensor] = []  # the task's e^t, one per mask
        # Detached views share the parameters' storage: current values at every step.
        self.embedding_values: list[Tensor] = []
        # F.sparsity_affine, its last row scaled by mask_sparsity_reg_factor.
        self.sparsity_map: tuple[Tensor, Tensor] | None = None
        self.rate_plan: RatePlan | None = None
        # Heads and per-task BatchNorms of trained tasks: no mode moves them.
        self.frozen_private: list[Tensor] = []
        # All e^t concatenated, as the last forward pass read them (with its graph).
        self.step_embeddings: Tensor | None = None
        self.step_gates: Tensor | None = None
        self.ratios: Tensor | None = None  # [R_1, ..., R_L, c * total] of the last batch
        self._layer_sparsity: Tensor | None = None  # its first L entries, detached, when asked
        # protect="update": (parameters, their values before the step, out and in rates).
        self.snapshots: tuple[list, list, list, list] | tuple = ()
        self.private_snapshots: list[tuple[Tensor, Tensor]] = []

    @classmethod
    def begin(cls, model: HATModule, task_label: int, s_max: float) -> TaskState:
        """The state of task ``task_label`` before its first step (docs/ALGORITHM.md §5.2)."""
        trained = model.trained_tasks()
        task = cls(s_max, task_label, num_previous_tasks=len(trained))
        masks = task.structure_of(model).masks
        task.embeddings = [m.embeddings[str(task_label)] for m in masks]
        task.embedding_values = [e.detach() for e in task.embeddings]
        task.frozen_private = [p for t in trained for p in model.task_private_parameters(t)]
        return task

    def structure_of(self, model: HATModule) -> ModelStructure:
        """The structure of ``model``, looked up once (again if the model changes)."""
        if self.structure is None or self.structure.model_id != id(model):
            self.structure = ModelStructure(model)
        return self.structure

    def build_sparsity_map(
        self, model: HATModule, reg_mode: str, guard_units: int, reg_factor: float
    ) -> None:
        """The affine map from this task's gates to ``[R_1, ..., R_L, c * total]``:
        the layers' sparsity and the regulariser term itself (docs/ALGORITHM.md §2)."""
        masks = self.structure_of(model).masks
        weights, bias = F.sparsity_affine([m.cumulative for m in masks], reg_mode, guard_units)
        weights[-1].mul_(reg_factor)
        bias[-1].mul_(reg_factor)
        self.sparsity_map = (weights, bias)

    # ------------------------------------------------------------------ one step
    def start_epoch(self, num_batches: int) -> None:
        self.num_batches = max(1, num_batches)
        self.batch = 0

    def start_step(self, model: HATModule, s_max: float) -> None:
        """Anneal ``s`` (HAT Eq. 3) and hand ``model`` this step's gates of all masks as
        one vector (HAT Eq. 1), from the embedding values they were made from: the
        forward pass, the regulariser and the compensation all read these."""
        assert self.task_label is not None, "start_step before TaskState.begin"
        self.batch = min(self.batch + 1, self.num_batches)
        self.s = F.annealed_scale(self.batch, self.num_batches, s_max)
        self.step_embeddings = model.task_embeddings(self.task_label)
        self.step_gates = F.gate(self.step_embeddings, self.s)
        model.set_step_gates(self.task_label, self.step_gates)

    def end_step(self, model: HATModule) -> None:
        self.task_steps += 1
        model.set_step_gates(None, None)  # frees the step's graph
        self.step_gates = None

    def sparsity_regulariser(self) -> Tensor:
        """This step's ``[R_1, ..., R_L, c * total]`` from its gates, kept; the last
        entry, the regulariser term of HAT Eq. 5, returned."""
        assert self.sparsity_map is not None and self.step_gates is not None
        weights, bias = self.sparsity_map
        self.ratios = torch.addmv(bias, weights, self.step_gates)
        self._layer_sparsity = None
        return self.ratios[-1]

    @property
    def layer_sparsity(self) -> Tensor | None:
        """``[R_1, ..., R_L]`` of the last training batch (HAT Sec. 2.6), or ``None``."""
        if self._layer_sparsity is None and self.ratios is not None:
            self._layer_sparsity = self.ratios.detach()[:-1]
        return self._layer_sparsity

    @layer_sparsity.setter
    def layer_sparsity(self, value) -> None:
        if value is not None and not isinstance(value, Tensor):
            value = torch.stack([torch.as_tensor(v) for v in value])
        self._layer_sparsity, self.ratios = value, None

    def current_sparsity(self) -> Tensor | None:
        """The ``R_l`` that per-batch rates read: ``[R_1, ..., R_L, total]`` as computed
        (the rate slots index only the first L), else :attr:`layer_sparsity` as set."""
        return self.layer_sparsity if self.ratios is None else self.ratios.detach()

    def hold_trained_private(self, zero_grads: bool) -> None:
        """Rate 0 on trained tasks' heads and BatchNorms, in every mode (docs/ALGORITHM.md §3.4).

        They receive gradients only when a trained task's samples are replayed
        (Replay, Cumulative, GEM/A-GEM memories) and belong to that task alone.
        ``zero_grads`` (``protect="gradient"``, or an update that is ``-lr * grad``):
        their gradients are zeroed; otherwise their values are restored after the step.
        """
        if zero_grads:
            for p in self.frozen_private:
                if p.grad is not None:
                    p.grad.zero_()
        else:
            frozen = [p for p in self.frozen_private if p.grad is not None]
            self.private_snapshots = [(p, p.detach().clone()) for p in frozen]

    def compensate_embedding_grads(self, s_max: float, clamp_threshold: float) -> None:
        """HAT Sec. 2.5 on every mask's embedding gradient, as one vector (docs/ALGORITHM.md §4)."""
        all_grads = [e.grad for e in self.embeddings]
        values, self.step_embeddings = self.step_embeddings, None
        grads = [g for g in all_grads if g is not None]
        if values is None or len(grads) < len(all_grads):
            kept = [v for v, g in zip(self.embedding_values, all_grads) if g is not None]
            if not kept:
                return
            values = torch.cat(kept)
        factor = F.compensation_factor(values, self.s, s_max, clamp_threshold)
        torch._foreach_mul_(grads, factor.split([g.numel() for g in grads]))

    def after_update(self, step_maths: StepMaths, embedding_clamp: float | None) -> None:
        """After the optimizer step (docs/ALGORITHM.md §5.1, step 9): blend the covered
        parameters back towards their snapshots (``protect="update"``), restore
        trained tasks' private parameters, clamp the embeddings if asked."""
        if not (self.snapshots or self.private_snapshots) and embedding_clamp is None:
            return
        with torch.no_grad():
            if self.snapshots:
                step_maths.blend(*self.snapshots)
            for p, before in self.private_snapshots:
                p.copy_(before)
            self.snapshots, self.private_snapshots = (), []
            if embedding_clamp is not None:
                for e in self.embeddings:
                    e.clamp_(-embedding_clamp, embedding_clamp)

    def end(self) -> None:
        """Drop what the last step and the rate layout hold (the masks changed: rates
        are laid out anew if asked for); :attr:`layer_sparsity` stays, detached."""
        self.layer_sparsity = self.layer_sparsity  # detached: nothing of the graph is kept
        self.rate_plan = None
        self.snapshots, self.private_snapshots = (), []
        self.step_embeddings = None


class TaskAttribute:
    """A plugin attribute that is its current :class:`TaskState`'s (``plugin.task``)."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, plugin, owner=None):
        return self if plugin is None else getattr(plugin.task, self.name)

    def __set__(self, plugin, value) -> None:
        setattr(plugin.task, self.name, value)
