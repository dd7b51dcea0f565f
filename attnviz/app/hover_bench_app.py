"""The live photo alone, on a synthetic position attention of any size: `python -m attnviz.app_bench --hover`
serves it with `streamlit run` to time the hover at sizes no shipped model has (N = 16384: a 128x128
feature map, C' = 64, as a user's stride-8 model on a 1024x1024 photo gives).

Arguments after `--`: GRID_H GRID_W CHANNELS PHOTO_H PHOTO_W. The record is random (timing only: the
numbers it shows are checked against the library by tests/test_hover.py on real models).
"""

import sys

import numpy as np
import streamlit as st
import torch

from attnviz.analysis.hover import hover_payload
from attnviz.app.attention_canvas import attention_canvas
from attnviz.capture.records import PositionAttentionRecord


@st.cache_resource
def _payload(grid_h: int, grid_w: int, channels: int, photo_h: int, photo_w: int):
    generator = torch.Generator().manual_seed(0)
    n = grid_h * grid_w
    query = torch.randn(1, n, channels, generator=generator) * 0.3
    key = torch.randn(1, n, channels, generator=generator) * 0.3
    log_normaliser = torch.logsumexp(query[0] @ key[0].T, dim=1)[None]
    record = PositionAttentionRecord("pam", query, key, log_normaliser, grid_h, grid_w, alpha=0.0)
    image = (np.random.default_rng(0).random((photo_h, photo_w, 3)) * 255).astype(np.uint8)
    return image, hover_payload(record, (photo_h, photo_w))


grid_h, grid_w, channels, photo_h, photo_w = (int(v) for v in sys.argv[1:6])
image, payload = _payload(grid_h, grid_w, channels, photo_h, photo_w)
st.session_state.setdefault("pins", [])
attention_canvas(
    image=image,
    photo_key="bench",
    panels=[{**payload.data, "id": f"{grid_h}x{grid_w}x{channels}"}],
    mode="row",
    opacity=0.75,
    scale="own",
    pixel=(photo_w // 2, photo_h // 2),
    pins=st.session_state["pins"],
    on_pin=lambda x, y, pins=None: st.session_state["pins"].append((x, y)),
    key="canvas",
)
st.markdown(f"Pins: {len(st.session_state['pins'])}")
