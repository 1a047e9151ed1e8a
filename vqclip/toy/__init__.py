"""The toy model pack: a tiny CLIP and a tiny VQGAN trained here on synthetic shapes, shipped as package data.

`data` draws the scenes, `train_clip` / `train_vqgan` rebuild the weights in `weights/`
(`python -m vqclip.toy.train_clip`, `python -m vqclip.toy.train_vqgan`), `metrics` measures them.
Load them as users do: `load_perceptor("toy")` and `resolve_vqgan("toy")` + `load_vqgan`.
"""
