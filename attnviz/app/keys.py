"""Every session-state key of the app, in one place.

Streamlit keeps widget values and the app's own per-session state in one
dictionary, `st.session_state`, keyed by strings. A typo in such a string is a
silent bug (a widget that forgets its value, a link that never applies), so
pages and app modules name keys only through these constants.
"""

from __future__ import annotations

# ---- the sidebar: what is shown
SOURCE = "source"  # radio: the model source's key ("camvid", "timm", "user"; attnviz.models.sources)
MODEL = "model"  # select box: CamVid checkpoint name
TIMM_MODEL = "timm_model"  # select box: timm architecture
USER_MODEL = "user_model"  # select box: one of the models given with --model / --models
DEVICE = "device"  # radio (only with a GPU)
SAMPLE = "sample"  # select box: sample photo name or the upload choice
UPLOAD = "upload"  # file uploader
FIGURE_FORMAT = "figure_format"  # radio: PNG or SVG for the charts' camera button

LANGUAGE = "language"  # radio: "en" or "zh" (attnviz.app.language)

# ---- the app's own state
LINK_PENDING = "_link_pending"  # the query parameters the session was opened with, handed out once
PIXEL = "chosen_pixel"  # (x, y) integer photo pixel shared by the Position and Attribution pages
PIXEL_PHOTO = "chosen_pixel_photo"  # the photo (image key) the chosen pixel and pins were chosen on


def last_click(click_key: str) -> str:
    """Where the last click of image widget `click_key` that was acted on is kept."""
    return f"{click_key}_last"


def switch_button(model_name: str, place: str = "") -> str:
    """The key of the button that switches the sidebar to `model_name` (`place`: which of a page's buttons to
    that model, where it has several)."""
    return f"switch-{model_name}" + (f"-{place}" if place else "")


# ---- Position page
PAM_MODE = "pam_mode"
PAM_MODULE = "pam_module"  # which spatial attention record (full name, heads included: "attn:head2")
PAM_MODULE_GROUP = "pam_module_group"  # select box: the module (its heads grouped under one entry)
PAM_HEAD = "pam_head"  # select box: the mean of a multi-head map or one of its heads
PAM_OPACITY = "pam_opacity"
PAM_CLICK = "pam_click"
PAM_PNG = "pam_png"
PAM_HTML = "pam_html"  # the position page's interactive HTML download
PAM_CSV = "pam_csv"
PAM_MAP = "pam_map"
ROLLOUT_MAP = "rollout_map"  # the researchers' layer: CLS's row of the attention rollout
CLASS_MAP = "class_map"  # the Channel page (XCiT): CLS's row of a class-attention layer (`class_map`)
PAM_MAP_CHART = "pam_map_chart"  # toggle: the chosen pixel's map as a chart too (off: the live photo shows it)
PAM_CANVAS = "pam_canvas"  # the live photo (attnviz.app.attention_canvas)
PAM_VIEWS = "pam_views"  # (panels, photo size, mode) and each pin's PositionView per panel, for the next pin
PAM_PINS = "pam_pins"  # the pinned photo pixels [(x, y), ...], oldest first
PAM_COMPARE = "pam_compare"  # the second model (or module) the hover drives beside the first
PAM_SCALE = "pam_scale"  # each map its own colour range, or one for all maps shown
PAM_CLEAR_PINS = "pam_clear_pins"
PAM_SLIDE = "pam_slide"  # the toggle of the pins' one-figure slide
PAM_SLIDE_FIGURE = "pam_slide_figure"

# ---- Channel map page
CAM_MODULE = "cam_module"  # which channel map record (full name, heads included: XCiT's "blocks.3.attn:head2")
CAM_MODULE_GROUP = "cam_module_group"  # select box: the module (its heads grouped under one entry)
CAM_HEAD = "cam_head"  # select box: one of the module's heads
CAM_CHANNEL = "cam_channel"  # the chosen row of X (a click on X, the link, or the box)
CAM_CANVAS = "cam_canvas"  # X in the page (attnviz.app.channel_canvas)
CAM_CSV = "cam_csv"
CAM_PNG = "cam_png"  # X as a PNG with its ticks, colour bar and caption (attnviz.viz.exports.channel_map_png)
CAM_HTML = "cam_html"  # the channel page's interactive HTML download
CAM_FEATURES = "cam_features"
CAM_FORMS = "cam_forms"
CAM_FUSION = "cam_fusion"  # the two DANet branches' sizes before their sum

# ---- Attribution page
ATTR_CLICK = "attr_click"
ATTR_OPACITY = "attr_opacity"
ATTR_CAM_CSV = "cam_grid_csv"
ATTR_IG_STEPS = "ig_steps"
ATTR_IG_RUN = "ig_run"
ATTR_IG_CANCEL = "ig_cancel"  # the button that stops a running Integrated Gradients
ATTR_IG_REQUESTS = "ig_requests"  # the (pixel, steps) pairs asked for in this session

# ---- ECA, ECA kernel and Flexible / SE pages
ECA_LAYER = "eca_layer"
ECA_CSV = "eca_csv"
ECA_HEATMAP = "eca_heatmap"
ECA_KERNEL_CHART = "eca_kernel"
ECA_SORTED = "eca_sorted"
ECA_CHANNEL = "eca_channel"  # the channel whose neighbourhood the ECA page unrolls
ECA_CHANNEL_FOR = "eca_channel_for"  # the (model, photo, layer) ECA_CHANNEL was last reset to the top channel for
ECA_NEIGHBOURS = "eca_neighbours"
ECA_NEIGHBOURS_CSV = "eca_neighbours_csv"
ECA_FEATURES = "eca"  # prefix of the extreme-channels widgets
KERNEL_GAMMA = "gamma"
KERNEL_B = "b"
KERNEL_RULE_CHART = "k_rule"
FLEX_LAYER = "flex_layer"
FLEX_BRANCHES = "flex_branches"
FLEX_CSV = "flex_csv"
FLEX_HEATMAP = "flex_heatmap"
FLEX_SORTED = "flex_sorted"
FLEX_SPATIAL = "flex_spatial"
FLEX_FEATURES = "flex"
FLEX_EXAMPLE = "flex_example"  # the (model, photo, layer) whose worked-example channel the one-channel view was set to

# ---- Coordinate Attention page
CA_LAYER = "ca_layer"
CA_CHANNEL = "ca_channel"
CA_CLICK = "ca_click"
CA_PROFILES = "ca_profiles"

# ---- Lecture page
LECTURE_STEP = "lecture_step"  # which of attnviz.analysis.lecture.STEPS is shown
LECTURE_PRESENT = "lecture_present"  # toggle: presentation view
LECTURE_FIGURE = "lecture_figure"
LECTURE_PREVIOUS = "lecture_previous"
LECTURE_NEXT = "lecture_next"
LECTURE_CANVAS = "lecture_canvas"


def lecture_switch(step: str) -> str:
    """The lecture's collapsed "switch it off" box of `step` in present mode."""
    return f"{LECTURE_CANVAS}_switch_{step}"


def lecture_page_button(button_key: str) -> str:
    """The twin of a lecture Previous / Next button that PageUp / PageDown press (a presenter's clicker)."""
    return f"{button_key}_page"


# ---- "Switch it off" (attnviz.app.switch), on every module page, lecture step and a user model's Overview


def switch(context: str, part: str) -> str:
    """A widget of the switch section shown in `context` (a page or a lecture step): part "mode" (the radio),
    "modules" (the picker), "changed" (the map of changed pixels)."""
    return f"switch_{context}_{part}"


# ---- Overview and Compare pages
PREDICTION_PNG = "prediction_png"
TRAINING_CURVE = "training_curve"
COMPARE_MODELS = "compare_models"


def compare_chart(kind: str, model_name: str) -> str:
    """A chart of one model's column on the Compare page ("weights" or "coords")."""
    return f"cmp_{'w' if kind == 'weights' else 'ca'}_{model_name}"


def extreme_channels(prefix: str, part: str) -> str:
    """A widget of the extreme-channels section: part "count" (the slider) or "features" (the chart)."""
    return f"{prefix}_{part}"


def channel_focus(prefix: str, part: str) -> str:
    """A widget of a channel page's one-channel section (prefix "eca" / "flex"): "channel", "scaling", "photos"."""
    return f"{prefix}_focus_{part}"


USER_CHANNEL_GATES = "overview_channel_gates"  # the Overview's chart of a user model's channel gates found by dataflow
USER_BRANCH_LAYER = "overview_branch_layer"  # select box: which branch-weight module of a user's model
USER_GATE_LAYER = "overview_gate_layer"  # select box: which element / plane gate of a user's model
USER_COORD_LAYER = "overview_coord_layer"  # select box: which coordinate attention of a user's model
USER_COMPUTED_COORD_LAYER = "overview_computed_coord_layer"  # the same, among those found by what they compute


def user_chart(module_name: str) -> str:
    """A chart of one of a user's attention modules on the Overview."""
    return f"user_{module_name}"


PAGE_SHOWN = "page_shown"  # this session has run a page before (attnviz.admission: later runs go first)
WORK_OWNER = "work_owner"  # this session's token in the shared work pool (attnviz.app.queueing)


def cam_channel_box(channel: int) -> str:
    """The Channel page's number box while row `channel` is chosen (pages/channel_map.channel_box)."""
    return f"cam_channel_box_{channel}"


def class_map(layer: str) -> str:
    """The chart of CLS's row in class-attention layer `layer` (the Channel page, XCiT)."""
    return f"{CLASS_MAP}_{layer}"
