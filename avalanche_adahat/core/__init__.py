"""The bottom layer, torch only: the formulas (:mod:`.functional`), the adjustment modes
(:mod:`.modes`), the step maths (:mod:`.step`), the hyperparameters and their checks
(:mod:`.config`, :mod:`.checks`), the names of the task-inference rules
(:mod:`.task_rules`), optimizer defaults, subnormal handling and checkpoint support.
Nothing here imports another layer of the package (CONTRIBUTING.md, "Layers")."""
