"""The layer that trains: the Avalanche plugins (:mod:`.plugin`), the state of the task
they train (:mod:`.task_state`), its adjustment rates (:mod:`.rates`, laid out by
:mod:`.rate_plan`), the strategies (:mod:`.strategies`), the checks of what a strategy
composes (:mod:`.composition`) and distributed training (:mod:`.distributed`). The only
layer that imports ``avalanche.training``."""
