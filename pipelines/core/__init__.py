"""The training core, torch alone: the engine that runs one step of any GAN (phases, DDP,
AMP, EMA, the non-finite guard), the step loop and its hooks, checkpoints, the stability
monitor. Runs without Ray or MLflow: the Ray Train driver (``pipelines.train``), the
benchmarks and the tests' plain DDP runs all train through it."""
