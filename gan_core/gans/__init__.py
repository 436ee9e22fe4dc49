"""One module per GAN; each registers itself with ``gan_core.registry.register``."""
