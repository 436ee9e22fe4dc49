"""Per-GAN default configs, one YAML file per registered GAN."""
