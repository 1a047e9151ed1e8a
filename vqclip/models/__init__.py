"""The model layer: the registry (entries as data in `registry/*.yaml`, one `resolve_model`), verified
downloads into a cache shared by many processes (`download`), safe loading of checkpoints and weights
(`safe_load`), VQGAN (`vqgan`), the CLIP perceptor (`clip`) and the CycleGAN denoiser (`cyclegan`).

Import the submodule you need; importing this package loads nothing (no torch either).
"""
