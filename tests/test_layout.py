"""The layers stay apart: Streamlit only in the app layer and pages; pages hold no state-key strings and no
Streamlit internals; every module of the package is named in the README's layout."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "attnviz"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_app_layer_imports_streamlit():
    offenders = [
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if "app" not in p.relative_to(PACKAGE).parts[:1]
        and any(n == "streamlit" or n.startswith("streamlit.") for n in _imports(p))
    ]
    assert offenders == [], offenders


def test_streamlit_internals_are_touched_in_one_module():
    users = [
        str(p.relative_to(ROOT))
        for p in [*PACKAGE.rglob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"]
        if any(n.startswith("streamlit.runtime") for n in _imports(p))
    ]
    assert users == ["attnviz/app/pagesmode.py"], users


def test_pages_name_state_keys_only_through_the_keys_module():
    literal_key = re.compile(r"""(key\s*=\s*f?["']|session_state(\.get\(|\[|\.setdefault\()\s*f?["'])""")
    for page in (ROOT / "pages").glob("*.py"):
        text = page.read_text()
        assert not literal_key.search(text), (page.name, literal_key.search(text).group(0))
        assert "st.stop()" not in text, f"{page.name}: stop through app.stop_page, which writes the link first"


def test_the_library_folders_say_their_layers():
    """DESIGN.md's layout: capture (the recorder, records and the readers), analysis (what is computed from a
    capture), viz (figures), app (Streamlit); the top level holds the command-line tools and the few basics
    every layer shares, nothing of the capture or analysis layers."""
    capture = {p.name for p in (PACKAGE / "capture").glob("*.py")}
    assert {
        "__init__.py",
        "recorder.py",
        "records.py",
        "readers.py",
        "adapters.py",
        "adapted.py",
        "dataflow.py",
    } <= capture
    assert (PACKAGE / "capture" / "families" / "catalogue.py").exists()
    analysis = {p.stem for p in (PACKAGE / "analysis").glob("*.py")}
    assert {"forward", "geometry", "quality", "affinity", "attribution", "metrics", "uncertainty", "views"} <= analysis
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    tools = {
        "bench",
        "evaluate",
        "train",
        "results",
        "screenshots",
        "app_bench",
        "load_bench",
        "serve",
        "cluster",
        "export_html",
        "deck",
        "slide_shots",
    }
    basics = {"kinds", "i18n", "text", "machine", "browser", "workpool", "admission", "sizedcache"}
    assert top == tools | basics, sorted(top ^ (tools | basics))
    for tool in tools:
        assert 'if __name__ == "__main__"' in (PACKAGE / f"{tool}.py").read_text(), tool


def test_the_readers_are_of_one_kind_in_one_order():
    from attnviz.capture.readers import READERS

    assert [reader.name for reader in READERS] == ["own", "library", "structure", "dataflow"]
    # only the readers module knows all four: the adapters, families and dataflow reader import none of the others
    for path in [
        PACKAGE / "capture" / "adapters.py",
        PACKAGE / "capture" / "dataflow.py",
        *(PACKAGE / "capture" / "families").rglob("*.py"),
    ]:
        others = {
            "attnviz.capture.adapters",
            "attnviz.capture.dataflow",
            "attnviz.capture.families",
            "attnviz.capture.readers",
        }
        own = "attnviz.capture.families" if "families" in path.parts else f"attnviz.capture.{path.stem}"
        imported = {n for n in _imports(path) if any(n == o or n.startswith(o + ".") for o in others)}
        assert all(n.startswith(own) for n in imported), (path.name, imported)


def test_the_readme_layout_names_every_module():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") : readme.index("## The library in five lines")]
    missing = [
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py"
        and p.parent.name not in ("modules", "models", "data", "viz")
        and p.name not in layout
    ]
    assert missing == [], missing


def test_the_library_modules_import_each_other_in_no_circle():
    """Imports inside functions count too (a lazy import only hides a circle). The app layer is left out: its
    package re-exports its modules, which import their siblings through it."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if not name.startswith("attnviz.app"):
            modules[name] = path
    edges = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
        edges[name] = {t for t in targets if t in modules and t != name}

    def circle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    circles = [" -> ".join(c) for c in map(circle_from, edges) if c]
    assert circles == [], circles


def test_pages_and_views_read_records_through_their_interface_not_getattr_with_a_default():
    """A record's attributes are its interface (attnviz.capture.records.SpatialMap for the spatial ones): a page or
    view that writes getattr(record, "num_keys", record.num_pixels) guesses instead of asking."""
    readers = [
        *(ROOT / "pages").glob("*.py"),
        PACKAGE / "analysis" / "views.py",
        PACKAGE / "analysis" / "hover.py",
        PACKAGE / "analysis" / "lecture.py",
        *(PACKAGE / "app").glob("*.py"),
    ]
    offenders = []
    for path in readers:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) == 3
                and isinstance(node.args[0], ast.Name)
                and "rec" in node.args[0].id
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], offenders
