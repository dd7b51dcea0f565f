"""How much of a page's visible prose is Chinese: CJK characters against Latin letters, outside formulas
($...$), code, numbers, layer and module names, and the names every language keeps as they are (model and
module names, file formats, datasets, libraries). Shared by the catalog and page tests."""

import re

_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_LATIN_WORDS = re.compile(r"[A-Za-z]+")

# names kept in every language: modules and models, file formats, datasets, libraries, maths symbols
KEPT_NAMES = (
    r"SE|CBAM|CA|ECA|DANet|PAM|CAM|SAGAN|GCNet|CCNet|MLP|ReLU|ImageNet|CamVid|timm|torchvision|PyTorch|Grad-CAM|"
    r"IG|PNG|SVG|CSV|JPEG|WebP|BMP|URL|GPU|CPU|FCN|ResNet|mIoU|IoU|FLOPs|ms|MB|GB|B_i|C_j|S_ij|X_cj|k|C|c|i|j|N|"
    r"H|W|x|y|h|w|log2|b|γ|r|M_s|M_c|exp|softmax|sigmoid|rowmax|argmax|"
    r"CC BY-NC|SegNet|Brostow|"  # the photos' licence and source
    r"attnviz"  # the app's own name
)
_NAMES = re.compile(
    r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`|"  # formulas and code
    r"[\w.\-/]*\d[\w.\-/]*|"  # numbers and names with digits (layers, photos, 1x1)
    r"backbone\S*|head\.\w+|\b[A-Za-z]_\w+\b|σ|ω_c|ω|α|β|κ|"
    r"fcn-[\w-]+|danet-[\w-]+|--[\w-]+|"
    rf"\b(?:{KEPT_NAMES})\b",
    re.S,
)


def strip_names(text: str) -> str:
    return _NAMES.sub(" ", text)


def prose_letters(text: str) -> tuple[int, int]:
    """(CJK characters, Latin letters) of `text`'s prose."""
    text = strip_names(text)
    return len(_CJK.findall(text)), len(_LATIN.findall(text))


def latin_words(text: str) -> list[str]:
    """The Latin words left in the prose (what a failing test shows)."""
    return _LATIN_WORDS.findall(strip_names(text))


def chinese_share(text: str) -> float:
    cjk, latin = prose_letters(text)
    return cjk / (cjk + latin) if cjk + latin else 1.0
