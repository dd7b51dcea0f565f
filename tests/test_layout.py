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
    offenders = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                 if "app" not in p.relative_to(PACKAGE).parts[:1]
                 and any(n == "streamlit" or n.startswith("streamlit.") for n in _imports(p))]
    assert offenders == [], offenders


def test_streamlit_internals_are_touched_in_one_module():
    users = [str(p.relative_to(ROOT)) for p in [*PACKAGE.rglob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"]
             if any(n.startswith("streamlit.runtime") for n in _imports(p))]
    assert users == ["attnviz/app/pagesmode.py"], users


def test_pages_name_state_keys_only_through_the_keys_module():
    literal_key = re.compile(r"""(key\s*=\s*f?["']|session_state(\.get\(|\[|\.setdefault\()\s*f?["'])""")
    for page in (ROOT / "pages").glob("*.py"):
        text = page.read_text()
        assert not literal_key.search(text), (page.name, literal_key.search(text).group(0))
        assert "st.stop()" not in text, f"{page.name}: stop through app.stop_page, which writes the link first"


def test_the_readme_layout_names_every_module():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## The library in five lines")]
    missing = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
               if p.name != "__init__.py" and p.parent.name not in ("modules", "models", "data", "viz")
               and p.name not in layout]
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
    """A record's attributes are its interface (attnviz.records.SpatialMap for the spatial ones): a page or
    view that writes getattr(record, "num_keys", record.num_pixels) guesses instead of asking."""
    readers = [*(ROOT / "pages").glob("*.py"), PACKAGE / "views.py", PACKAGE / "hover.py", PACKAGE / "lecture.py",
               *(PACKAGE / "app").glob("*.py")]
    offenders = []
    for path in readers:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                    and len(node.args) == 3 and isinstance(node.args[0], ast.Name) and "rec" in node.args[0].id):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], offenders
