"""attnviz: see what the attention modules of a CNN compute.

The library is importable and testable without Streamlit:

    from attnviz import capture
    with capture(model) as rec:
        logits = model(x)
"""
from attnviz.capture import capture

__all__ = ["capture"]
__version__ = "0.1.0"
