"""attnviz: see what the attention modules of a CNN compute.

The library is importable and testable without Streamlit:

    from attnviz.capture import capture
    with capture(model) as rec:
        logits = model(x)
"""

__version__ = "0.2.0"
