"""The model layer: VQGAN (`vqgan`), safe checkpoint loading (`safe_load`), the pretrained
checkpoint registry and downloads (`registry`, `download`), and the CLIP perceptor (`clip`).

Import the submodule you need; importing this package loads nothing (no torch either).
"""
