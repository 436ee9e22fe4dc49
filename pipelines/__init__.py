"""Orchestration around gan_core: config, WebDataset input, the training loop under Ray
Train, MLflow tracking and the ``ganforge`` command line."""
