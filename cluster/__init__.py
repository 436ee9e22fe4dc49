"""What talks to a Ray cluster: connecting to (or starting) Ray, and later job submission."""
