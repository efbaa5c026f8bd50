"""The parts `writing-rl train` is wired from, one job each; `writing_rl.train` is the recipe that wires them.

- `config`: the train config's schema, the embedded demo, and the config a resume reads back
- `samples`: the training samples, with one-line errors for a dataset that cannot be loaded
- `trl_inputs`: what TRL is handed (its `GRPOConfig`, its dataset) and accelerate's view of the process
- `judge`: what each rank scores with, the pairwise judge or the pointwise scorer (the embedded server's lifetime,
  each rank's share and cache)
- `run_folder`: what a run folder holds, whether a run may start in it, and restoring it from a checkpoint
- `summary`: what `train` prints at the end
"""
