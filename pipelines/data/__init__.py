"""Image folders to WebDataset shards, and shards to equal-length per-rank batch streams."""
