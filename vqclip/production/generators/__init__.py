"""Generators: what an optimized engine optimizes per frame (a VQGAN latent, RGB pixels); registered in ``engines.ENGINES``."""
