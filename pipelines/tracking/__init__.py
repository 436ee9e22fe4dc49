"""MLflow tracking owned by ganforge: the store, runs created by the driver, and the rank-0
logger that workers write metrics, sample grids and checkpoints through."""
