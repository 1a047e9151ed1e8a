"""Shared fixtures: tiny models written in the real file formats, loaded by the public loaders.

Everything here is seeded and small enough for 2 CPU cores; nothing touches the network.
"""

from __future__ import annotations

import contextlib
import json
import threading

import pytest
import torch

TINY_DDCONFIG = {
    "double_z": False,
    "z_channels": 8,
    "resolution": 16,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,  # taming's GroupNorm has 32 groups, so 32 is the smallest width
    "ch_mult": [1, 2],  # factor 2: a 16x16 image <-> an 8x8 latent
    "num_res_blocks": 1,
    "attn_resolutions": [8],  # one attention block at the latent size, as the real f16 models have
    "dropout": 0.0,
}

# A tiny open_clip model config (same schema as open_clip's model_configs/*.json).
TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def make_tiny_vqgan(kind: str = "vq", seed: int = 0, n_embed: int = 16):
    """A seeded tiny VQGAN ("vq" or "gumbel") with random weights."""
    from vqclip.models.vqgan import build_vqgan

    torch.manual_seed(seed)
    return build_vqgan({"ddconfig": TINY_DDCONFIG, "n_embed": n_embed, "embed_dim": 8, "kind": kind})


@contextlib.contextmanager
def local_http_server(handler, **state):
    """A threaded HTTP server on 127.0.0.1 with ``handler``; ``state`` becomes its attributes, ``url`` its address."""
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    for name, value in state.items():
        setattr(server, name, value)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def taming_checkpoints(tmp_path_factory):
    """Tiny VQGANs written as taming yaml + Lightning ckpt, one per config kind.

    Returns {"vq" | "gumbel" | "transformer": (yaml_path, ckpt_path, source_model)}.
    """
    from vqclip.models.vqgan import save_taming_checkpoint

    root = tmp_path_factory.mktemp("taming")
    out = {}
    for name, model_kind, save_kind in (("vq", "vq", "vq"), ("gumbel", "gumbel", "gumbel"), ("transformer", "vq", "transformer")):
        model = make_tiny_vqgan(model_kind, seed=len(out))
        config, ckpt = root / f"{name}.yaml", root / f"{name}.ckpt"
        save_taming_checkpoint(model, ckpt, config, kind=save_kind)
        out[name] = (config, ckpt, model)
    return out


@pytest.fixture(scope="session")
def open_clip_files(tmp_path_factory):
    """A tiny open_clip model as local files: {"config": model.json, "weights": open_clip_model.pt}."""
    import open_clip

    root = tmp_path_factory.mktemp("open_clip")
    config_path, weights_path = root / "tiny-clip.json", root / "tiny-clip.pt"
    config_path.write_text(json.dumps(TINY_CLIP_CONFIG), encoding="utf-8")
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    torch.save(model.state_dict(), weights_path)
    return {"config": config_path, "weights": weights_path}


@pytest.fixture
def echo(monkeypatch):
    """A preset of tests/test_render.py's EchoEngine: a sampled engine with state across chunks, milliseconds per frame, no model files."""
    from vqclip.production.engines import ENGINES

    monkeypatch.setitem(ENGINES, "echo", "tests.test_render:EchoEngine")
    return {"prompts": {"texts": "a red circle"}, "size": {"width": 20, "height": 16},
            "generation": {"engine": "echo", "seed": 2, "device": "cpu", "echo": {"chunk": 2, "steps": 3}},
            "animation": {"frames": 5}, "output": {"images_interval": 0, "video": False, "contact_sheet": True}}
