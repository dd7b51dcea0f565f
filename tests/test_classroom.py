"""A classroom on one server, and on more than one: sessions spoken over Streamlit's own websocket
(attnviz.app.protocol_client) against a real server, a fresh server opened by several sessions at once,
the load benchmark's short form, and two app processes behind Debian's nginx (attnviz.cluster)."""

import asyncio
from pathlib import Path

import pytest

from attnviz.browser import streamlit_server
from attnviz.models import list_checkpoints

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif("danet-eca" not in list_checkpoints(), reason="needs the danet-eca checkpoint"),
]


def _established(port: int) -> int:
    """TCP connections in the ESTABLISHED state to local `port` (/proc/net/tcp: the proxy's to an app)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            count += 1
    return count


def test_sessions_opening_a_fresh_servers_page_at_once_all_get_the_app():
    """A class opens the teacher's link to the Position page of a server nobody has visited: every session
    starts in Streamlit's pages/-folder mode, and every one must end up in app.py (sidebar, the live photo),
    not only the first (the others showed an empty page: found by the load benchmark)."""
    from attnviz.app.protocol_client import Session

    async def student():
        session = await Session.open(url, page="position", query="model=danet-eca")
        await session.close()
        return session.last

    async def classroom():
        return await asyncio.gather(*(student() for _ in range(4)))

    with streamlit_server(ROOT / "app.py", ROOT) as url:
        runs = asyncio.run(classroom())
    for run in runs:
        assert not run.exceptions and run.page == "position"
        assert {"sample", "model", "pam_canvas"} <= set(run.widgets), sorted(run.widgets)
        assert "Chosen pixel" in run.text


def test_the_load_benchmark_short_form_has_no_error_and_no_crosstalk():
    """Six sessions at once: each pins, switches photo, two upload a 4000x3000 JPEG, one runs IG; every page's
    numbers are checked against the library in the benchmark itself. The warm-up opens its pages cleanly."""
    from attnviz.load_bench import Scenario, run_classroom
    from attnviz.serve import WARM_PAGES, warm_up

    pid = []
    with streamlit_server(ROOT / "app.py", ROOT, pid_out=pid) as url:
        warmed = warm_up(url)
        report = run_classroom(url, Scenario(sessions=6, think_s=0.3, ramp_s=0.5, upload_every=3, ig_every=6), pid[0])
    assert set(warmed) == {page or "default" for page, _ in WARM_PAGES} | {"total"}
    assert report["errors"] == 0, report["error_messages"]
    assert report["crosstalk"] == 0, report["crosstalk_messages"]
    actions = report["actions"]
    assert actions["open"]["count"] == 6 and actions["pin"]["count"] == 18 and actions["photo"]["count"] == 6
    assert actions["upload"]["count"] == 2 and actions["ig"]["count"] == 1
    assert report["checked"] == 6 * 5 + 2  # open, 3 pins and the photo per session; each upload
    assert report["server_peak_mib"] >= report["server_rss_before_mib"] > 0


def test_two_app_processes_behind_nginx_keep_each_browser_on_its_process():
    """attnviz.cluster: Debian's nginx with deploy/attnviz.conf.template in front of two app processes. Sessions
    spread over both, and the benchmark's short form through the proxy (uploads included: an upload must reach
    the process holding its session) has no error and no cross-talk."""
    from attnviz.app.protocol_client import Session
    from attnviz.cluster import NGINX, app_processes, nginx_proxy
    from attnviz.load_bench import Scenario, run_classroom

    if not Path(NGINX).exists():
        pytest.skip(
            "nginx is not installed (apt-get install nginx; make test and .ci/run install it as root): "
            "the two-process proxy test did not run"
        )

    async def hold_sessions(url, count):
        sessions = [await Session.open(url, page="position", query="model=danet-eca") for _ in range(count)]
        spread = [_established(port) for port in ports]
        for session in sessions:
            await session.close()
        return sessions, spread

    with app_processes(2, 8711, warm=False) as backends, nginx_proxy(8710, backends) as url:
        ports = [int(backend.rsplit(":", 1)[1]) for backend in backends]
        sessions, spread = asyncio.run(hold_sessions(url, 16))
        report = run_classroom(url, Scenario(sessions=4, think_s=0.3, ramp_s=0.5, upload_every=2, ig_every=0))
    assert all(not s.last.exceptions and "pam_canvas" in s.last.widgets for s in sessions)
    assert sum(spread) >= 16 and min(spread) > 0, spread  # both processes hold sessions
    assert report["errors"] == 0, report["error_messages"]
    assert report["crosstalk"] == 0, report["crosstalk_messages"]
    assert report["actions"]["upload"]["count"] == 2


def test_the_proxy_template_renders_every_backend_and_leaves_nginx_variables():
    from attnviz.cluster import render

    text = render(8500, ["127.0.0.1:8501", "127.0.0.1:8502"])
    assert "listen 8500;" in text and "server 127.0.0.1:8501;" in text and "server 127.0.0.1:8502;" in text
    assert "hash $attnviz_route consistent;" in text and "$cookie_attnviz_route" in text and "${ATTNVIZ" not in text
