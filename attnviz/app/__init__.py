"""The app layer: the only Streamlit code besides app.py and pages/.

    settings    the checkpoint folder and weights folder, resolved once from argv and the environment
    resources   every cached loader (models, analyses, attributions, samples) and the catalogue
    sources     the model sources by key ("camvid", "timm", "user"; attnviz.models.sources), from the settings
    selection   what the sidebar chose in this run (a ContextVar), and the page's link parameters
    sidebar     the shared sidebar that makes the selection
    links       the address bar: read once, applied to widgets, written once per run after the page
    widgets     charts, downloads, the layer picker, switch buttons
    guards      what a page needs before it draws; stop_page
    switch      "switch it off": a module page's answer with and without its modules (attnviz.analysis.switch)
    keys        every session-state key
    pagesmode   the one touch of Streamlit internals (leaving its pages/-folder mode)

Pages import what they use from here: `from attnviz import app` and `app.chart(...)`.
"""

from attnviz.app.attention_canvas import attention_canvas
from attnviz.app.channel_canvas import channel_canvas
from attnviz.app.guards import (
    Panel,
    analysis_for,
    companion_label,
    companion_panels,
    main_panel,
    page_analysis,
    page_selection,
    require_models,
    stop_page,
    weights_on_photos,
)
from attnviz.app.language import bound_t, language, t
from attnviz.app.links import (
    apply_link,
    chosen_pixel,
    link_params,
    pinned_pixels,
    pins_text,
    remove_pins,
    take_pin,
    write_link,
)
from attnviz.app.queueing import pooled
from attnviz.app.resources import (
    catalogue,
    channel_data,
    checkpoint_dir,
    hover_data,
    pixel_grad_cam,
    pixel_integrated_gradients,
    pixel_view,
    results,
)
from attnviz.app.selection import Selection, begin_run, continue_run, current
from attnviz.app.sidebar import sidebar
from attnviz.app.switch import switch_section, switchable_modules
from attnviz.app.view_download import view_download
from attnviz.app.widgets import (
    channel_focus,
    channel_map_picker,
    chart,
    download,
    extreme_channels,
    figure_caption,
    layer_picker,
    pins_slide,
    spatial_module_picker,
    switch_button,
)

__all__ = [
    "switch_section",
    "switchable_modules",
    "view_download",
    "pooled",
    "bound_t",
    "pins_slide",
    "companion_label",
    "figure_caption",
    "t",
    "language",
    "channel_focus",
    "weights_on_photos",
    "Panel",
    "main_panel",
    "attention_canvas",
    "channel_canvas",
    "channel_data",
    "companion_panels",
    "hover_data",
    "pixel_view",
    "Selection",
    "begin_run",
    "continue_run",
    "current",
    "sidebar",
    "page_selection",
    "page_analysis",
    "analysis_for",
    "require_models",
    "stop_page",
    "catalogue",
    "checkpoint_dir",
    "results",
    "pixel_grad_cam",
    "pixel_integrated_gradients",
    "chart",
    "download",
    "layer_picker",
    "spatial_module_picker",
    "channel_map_picker",
    "extreme_channels",
    "switch_button",
    "apply_link",
    "chosen_pixel",
    "pinned_pixels",
    "take_pin",
    "remove_pins",
    "pins_text",
    "link_params",
    "write_link",
]
