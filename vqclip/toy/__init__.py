"""The toy model pack: a tiny CLIP and a tiny VQGAN trained here on synthetic shapes, shipped as package data.

`data` draws the scenes, `train_clip` / `train_vqgan` rebuild the weights in `weights/`
(`python -m tools.train_toy_clip`, `python -m tools.train_toy_vqgan`), `metrics` measures them.
Load them as users do: `load_perceptor("toy")` and `resolve_vqgan("toy")` + `load_vqgan`.
"""
