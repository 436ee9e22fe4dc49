"""Sample-quality evaluation: reference statistics of the shards, and the evaluator that runs
across training ranks (or in one process for `ganforge evaluate`)."""
