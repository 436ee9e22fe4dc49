"""Network building blocks shared by the GANs."""
