"""``ganforge tune``: Ray Tune searches of the generator/discriminator learning-rate balance,
where every trial is a Ray Train run, tracked as nested MLflow runs."""
