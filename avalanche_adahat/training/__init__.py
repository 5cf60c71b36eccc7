"""The layer that trains: the Avalanche plugins (:mod:`.plugin`) and strategies
(:mod:`.strategies`), the checks of what a strategy composes (:mod:`.composition`),
the rate layout of a task (:mod:`.rate_plan`) and distributed training
(:mod:`.distributed`). The only layer that imports ``avalanche.training``."""
