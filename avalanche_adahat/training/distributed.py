"""Multi-process data-parallel training with Avalanche's ``DistributedHelper``.

Avalanche 0.6 initialises ``torch.distributed``
(``DistributedHelper.init_distributed``), shards training and evaluation data
with a ``DistributedSampler`` and logs from the main process only, but its
templates never wrap the model in ``DistributedDataParallel``:
``DistributedHelper.wrap_model`` exists and nothing calls it. Wrapping once,
before training, is not enough for HAT either: each new task adds parameters
(the task embeddings of every ``HATMask`` and, with a ``MultiHeadClassifier``,
a head) during model adaptation, and DDP only averages the gradients of the
parameters it saw when it was built.

:class:`DistributedModelPlugin` therefore wraps the adapted model at the start
of every training experience (after Avalanche's model adaptation and optimizer
update) and unwraps it at the end, so evaluation and the next adaptation see
the plain backbone. Building DDP broadcasts rank 0's parameters and buffers, so
all processes start every task from identical weights, embeddings and masks.

Within an iteration DDP averages the gradients during ``backward``; the
:class:`~avalanche_adahat.HATPlugin` adjusts and compensates them in
``before_update``, after the average, so every process applies the same step.
"""

from __future__ import annotations

from avalanche.core import SupervisedPlugin
from avalanche.distributed import DistributedHelper
from torch.nn.parallel import DistributedDataParallel

__all__ = ["DistributedModelPlugin"]


class DistributedModelPlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Wrap ``strategy.model`` in ``DistributedDataParallel`` while it trains.

    Does nothing when ``torch.distributed`` is not initialised, so the same
    script runs in a single process. Uses ``DistributedHelper.wrap_model``
    (``find_unused_parameters=True``: the embeddings and heads of other tasks
    take no part in the forward pass).
    """

    def before_training_exp(self, strategy, **kwargs):
        if DistributedHelper.is_distributed and not isinstance(
            strategy.model, DistributedDataParallel
        ):
            strategy.model = DistributedHelper.wrap_model(strategy.model)

    def after_training_exp(self, strategy, **kwargs):
        strategy.model = DistributedHelper.unwrap_model(strategy.model)
