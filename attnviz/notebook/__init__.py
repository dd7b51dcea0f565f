"""The live views in a notebook: the app's hovered photo and channel map as anywidget widgets (widget.py).

    from attnviz.notebook import show
    view = show("danet-eca", "0001TP_008550")     # the last line of a cell shows it: hover, click to pin
    view.pins                                     # in the next cell: [(x, y), ...] as clicked
    view.rows()                                   # the library's row of S of every pin (attnviz.analysis.views)

The rest of the library imports without anywidget; this layer needs it (requirements.txt).
"""

from attnviz.notebook.widget import AttentionView, ChannelView, show, show_channels

__all__ = ["show", "show_channels", "AttentionView", "ChannelView"]
