"""Feature statistics of HAT's frozen task networks, as exact streaming sums.

Once task ``j`` is trained, HAT keeps every parameter its mask uses bitwise
unchanged, so the features task ``j``'s masked network computes never change:
statistics gathered in that feature space (*space* ``j``) never go stale. Each
space holds, in float64, for every class ``c`` it has seen: the count ``n_c``
and the sum ``Σ f`` of its features; and, over all its samples, the second
moment ``Σ f fᵀ``. From these follow the class means ``μ_c`` and the pooled
within-class covariance (docs/ALGORITHM.md §10.2)::

    Σ = (Σ f fᵀ - Σ_c n_c μ_c μ_cᵀ) / (N - C)

shrunk towards ``tr(Σ)/d · I`` by the oracle-approximating shrinkage (OAS,
Chen et al., IEEE TSP 2010) so that a space with more units than samples still
gets a well-conditioned estimate.

With ``cov_rank=k`` a space keeps its within-class scatter as the ``k`` leading
eigenpairs plus the mean of the other eigenvalues (``U Λ Uᵀ + ρ (I - U Uᵀ)``),
``d k + k + 1`` values instead of ``d²``: each task's scatter is added exactly to
that approximation and the result truncated again.

All of it lives in buffers of one module, so ``state_dict()`` and Avalanche
checkpoints carry it and a resumed run continues bitwise.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.checks import check_positive_int

__all__ = ["FeatureStatistics", "SpaceModel", "oas_shrinkage"]

_FIELDS = ("classes", "owners", "counts", "sums", "moment")  # full covariance
_LOW_RANK_FIELDS = ("classes", "owners", "counts", "sums", "basis", "values", "rest")


def oas_shrinkage(cov: Tensor, n: float) -> float:
    """The OAS shrinkage intensity of a ``d x d`` sample covariance from ``n`` samples
    (Chen et al. 2010, Eq. 23; the form of scikit-learn's ``oas``)."""
    d = cov.shape[0]
    mu = torch.trace(cov) / d
    alpha = (cov * cov).mean()
    num = alpha + mu * mu
    den = (n + 1.0) * (alpha - mu * mu / d)
    return 1.0 if float(den) <= 0.0 else min(float(num / den), 1.0)


class SpaceModel:
    """The Gaussian model of one space: class means, the shared covariance and the
    linear discriminant ``g_c(f) = fᵀ Σ⁻¹ μ_c - ½ μ_cᵀ Σ⁻¹ μ_c`` (equal class priors)."""

    def __init__(self, classes: Tensor, owners: Tensor, counts: Tensor, sums: Tensor, scatter):
        """``scatter``: the pooled within-class scatter ``Σ_c Σ_{f ∈ c} (f - μ_c)(f - μ_c)ᵀ``."""
        self.classes, self.owners = classes, owners
        self.means = sums / counts[:, None]
        n, c = float(counts.sum()), counts.numel()
        cov = scatter / max(n - c, 1.0)
        d = cov.shape[0]
        self.shrinkage = oas_shrinkage(cov, max(n - c, 1.0))
        ridge = self.shrinkage * torch.trace(cov) / d
        cov = (1.0 - self.shrinkage) * cov + ridge * torch.eye(d, dtype=cov.dtype)
        self.chol = torch.linalg.cholesky(cov)
        self.precision_means = torch.cholesky_solve(self.means.t(), self.chol).t()  # (C, d)
        self.dim = d
        self.white_means = self._whiten(self.means)  # L⁻¹μ_c, for the Mahalanobis distances

    def discriminants(self, f: Tensor) -> Tensor:
        """``g_c(f)`` for every class of the space, ``(B, C)``."""
        bias = -0.5 * (self.precision_means * self.means).sum(dim=1)
        return f @ self.precision_means.t() + bias

    def mahalanobis(self, f: Tensor) -> Tensor:
        """Squared Mahalanobis distance of ``f`` to every class mean, ``(B, C)``:
        ``|L⁻¹f - L⁻¹μ_c|²`` with ``Σ = L Lᵀ``, one triangular solve per batch."""
        return torch.cdist(self._whiten(f), self.white_means).square()

    def _whiten(self, rows: Tensor) -> Tensor:
        return torch.linalg.solve_triangular(self.chol, rows.t(), upper=False).t()


class FeatureStatistics(nn.Module):
    """Streaming class statistics in the feature space of each trained task.

    Buffers of space ``j`` (``{field}_T{j}``): ``classes`` (the class ids seen, in
    order of arrival), ``owners`` (the task each class belongs to; a class is its id
    and its task, as tasks may reuse ids), ``counts``,
    ``sums`` ``(C, d_j)`` and ``moment`` ``(d_j, d_j)``, all float64 but the ids.
    """

    cov_rank: Tensor

    def __init__(self, cov_rank: int | None = None) -> None:
        super().__init__()
        if cov_rank is not None:
            check_positive_int("cov_rank", cov_rank)
        # 0: full covariance; a buffer, so that a checkpoint restores it
        self.register_buffer("cov_rank", torch.tensor(cov_rank or 0))
        self._models: dict[int, SpaceModel] = {}

    @property
    def rank(self) -> int | None:
        """The covariance rank kept per space (``None``: full)."""
        return int(self.cov_rank) or None

    def spaces(self) -> list[int]:
        """The task labels that have a space, in order of creation."""
        return [
            int(name[len("counts_T") :])
            for name, _ in self.named_buffers()
            if name.startswith("counts_T")
        ]

    def space(self, j: int) -> dict[str, Tensor]:
        """The buffers of space ``j`` by field name."""
        if not hasattr(self, f"counts_T{j}"):
            raise KeyError(f"no feature statistics for task {j}")
        fields = _FIELDS if hasattr(self, f"moment_T{j}") else _LOW_RANK_FIELDS
        return {f: getattr(self, f"{f}_T{j}") for f in fields}

    def scatter(self, j: int) -> Tensor:
        """The pooled within-class scatter of space ``j``, ``(d_j, d_j)`` (its low-rank
        approximation with ``cov_rank``)."""
        s = self.space(j)
        if "moment" in s:
            return s["moment"] - (s["sums"].t() / s["counts"]) @ s["sums"]
        basis, values, rest = s["basis"], s["values"], s["rest"]
        eye = torch.eye(basis.shape[0], dtype=basis.dtype, device=basis.device)
        return (basis * values) @ basis.t() + rest * (eye - basis @ basis.t())

    def owners(self, j: int) -> set[int]:
        """The tasks whose data space ``j`` has seen."""
        return (
            {int(t) for t in getattr(self, f"owners_T{j}").unique()}
            if hasattr(self, f"owners_T{j}")
            else set()
        )

    @torch.no_grad()
    def add_sums(
        self, j: int, classes: Tensor, owner: int, counts: Tensor, sums: Tensor, moment: Tensor
    ) -> None:
        """Add the sums of samples of task ``owner`` to space ``j``: per class of
        ``classes`` ``(K,)`` its ``counts`` ``(K,)`` and feature ``sums`` ``(K, d_j)``,
        and their second ``moment`` ``Σ f fᵀ`` ``(d_j, d_j)`` (float64, added exactly)."""
        classes = classes.to(torch.long)
        counts, sums = counts.to(torch.float64), sums.to(torch.float64)
        if not hasattr(self, f"counts_T{j}"):
            d = moment.shape[0]
            self.register_buffer(f"classes_T{j}", classes.new_empty(0))
            self.register_buffer(f"owners_T{j}", classes.new_empty(0))
            self.register_buffer(f"counts_T{j}", moment.new_zeros(0))
            self.register_buffer(f"sums_T{j}", moment.new_zeros(0, d))
            if self.rank is None:
                self.register_buffer(f"moment_T{j}", moment.new_zeros(d, d))
            else:
                k = min(self.rank, d)
                self.register_buffer(f"basis_T{j}", moment.new_zeros(d, k))
                self.register_buffer(f"values_T{j}", moment.new_zeros(k))
                self.register_buffer(f"rest_T{j}", moment.new_zeros(()))
        s = self.space(j)
        if moment.shape[0] != s["sums"].shape[1]:
            raise ValueError(f"space {j} has {s['sums'].shape[1]} features, got {moment.shape[0]}")
        # A class is (its id, its task): tasks may reuse ids (class ids from 0 in each).
        mine = s["classes"][s["owners"] == owner]
        missing = classes[~torch.isin(classes, mine)]
        if missing.numel():
            k = missing.numel()
            d = moment.shape[0]
            setattr(self, f"classes_T{j}", torch.cat([s["classes"], missing]))
            setattr(self, f"owners_T{j}", torch.cat([s["owners"], missing.new_full((k,), owner)]))
            setattr(self, f"counts_T{j}", torch.cat([s["counts"], s["counts"].new_zeros(k)]))
            setattr(self, f"sums_T{j}", torch.cat([s["sums"], s["sums"].new_zeros(k, d)]))
            s = self.space(j)
        match = (classes[:, None] == s["classes"][None]) & (s["owners"] == owner)[None]
        at = match.to(torch.long).argmax(dim=1)
        if "moment" in s:
            s["moment"].add_(moment.to(torch.float64))
        else:
            if missing.numel() != classes.numel():
                raise ValueError(
                    f"with cov_rank, each class's samples are added at once; space {j} "
                    f"already holds classes {sorted(set(classes.tolist()) - set(missing.tolist()))} "
                    f"of task {owner}"
                )
            added = moment.to(torch.float64) - (sums.t() / counts) @ sums
            self._truncate(j, self.scatter(j) + added)
        s["counts"].index_add_(0, at, counts)
        s["sums"].index_add_(0, at, sums)
        self._models.pop(j, None)

    def _truncate(self, j: int, scatter: Tensor) -> None:
        """Keep the leading eigenpairs of ``scatter`` and the mean of the other eigenvalues."""
        basis = getattr(self, f"basis_T{j}")
        d, k = basis.shape
        values, vectors = torch.linalg.eigh(scatter)  # ascending
        basis.copy_(vectors[:, d - k :])
        getattr(self, f"values_T{j}").copy_(values[d - k :])
        rest = values[: d - k].mean() if k < d else values.new_zeros(())
        getattr(self, f"rest_T{j}").copy_(rest.clamp_min(0.0))

    def model(self, j: int) -> SpaceModel:
        """The Gaussian model of space ``j`` (computed once per change of its sums)."""
        if j not in self._models:
            s = self.space(j)
            self._models[j] = SpaceModel(
                s["classes"], s["owners"], s["counts"], s["sums"], self.scatter(j)
            )
        return self._models[j]

    def nbytes(self) -> int:
        """Bytes held by the statistics of every space."""
        return sum(b.numel() * b.element_size() for n, b in self.named_buffers() if "_T" in n)

    def _apply(self, fn, *args, **kwargs):
        self._models.clear()  # models hold tensors of the old device or dtype
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint's spaces may not exist here yet, or have other sizes.
        for key, value in state_dict.items():
            name = key[len(prefix) :] if key.startswith(prefix) else ""
            if name.split("_T", 1)[0] in _FIELDS + _LOW_RANK_FIELDS and "." not in name:
                self.register_buffer(name, torch.zeros_like(value))
        self._models.clear()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
