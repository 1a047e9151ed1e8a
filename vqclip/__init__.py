"""vqclip: words to short videos with iterative VQGAN-CLIP.

Importing vqclip does no work: models load only when a function asks for them.
"""

__version__ = "0.1.0"
