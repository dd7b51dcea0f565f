"""A browser tab without the browser: one session of a running Streamlit server, spoken over its own websocket.

What a tab sends, Streamlit's protocol buffers over `/_stcore/stream`: a `rerun_script` BackMsg carrying the
page (its url path or script hash), the query string and the widgets' values; what it gets back, ForwardMsgs
(`new_session`, `navigation`, one `delta` per element, `script_finished`). This client sends the same, so a
load benchmark can hold 30 or more sessions in one process where 30 Chromium tabs would not fit two cores, and
read back what each page printed. It changes widgets by their user key (ids are read from the deltas), clicks
buttons, triggers a components-v2 event (the live photo's pin), and uploads a file the way the file uploader
does (an upload URL asked over the socket, an HTTP PUT with the XSRF cookie). Like a browser it keeps the
cookies of its first request (a sticky proxy's route, Streamlit's XSRF token) and sends them with the
websocket and every upload, so it stays on one app process behind attnviz.cluster's nginx.

Like a browser it also speaks fragments (st.fragment): an event of a widget inside one names its fragment, and
the server reruns only that part (the run's deltas are then that part's alone; the widgets of the rest of the
page are kept from earlier runs). And it reports the hashes of the large messages it holds (the forward-message
cache), so that an unchanged large element comes back as a reference, as to a browser; a reference is not
resolved (this client reads texts, and large elements hold none).

Used by attnviz.load_bench and the warm start of attnviz.serve; tested against a real server in
tests/test_classroom.py. Not a general client: no reconnection, references to cached messages not resolved.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

import requests
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect

__all__ = ["Run", "Session", "ProtocolError"]

_DONE = {
    ForwardMsg.FINISHED_SUCCESSFULLY,
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR,
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY,
}
_TEXT = {"markdown": "body", "alert": "body", "text": "body", "heading": "body", "code": "code_text", "json": "body"}


class ProtocolError(RuntimeError):
    """The server answered something this client cannot go on from (a widget that is not there, ...)."""


@dataclass
class Run:
    """What one script run sent: the elements' texts in page order, the widgets by key, exceptions, timing."""

    seconds: float
    texts: list[tuple[str, str]] = field(default_factory=list)  # (element kind, text)
    widgets: dict[str, tuple[str, object]] = field(default_factory=dict)  # user key -> (kind, element proto)
    exceptions: list[str] = field(default_factory=list)
    page: str = ""  # the url path of the page that ran
    fragments: dict[str, str] = field(default_factory=dict)  # user key -> id of the fragment the widget is in

    @property
    def text(self) -> str:
        return "\n".join(text for _, text in self.texts)


def _read_run(messages: list[ForwardMsg], seconds: float) -> Run:
    by_path: dict[tuple, tuple[str, object]] = {}
    page_hash, pages = "", {}
    for message in messages:
        kind = message.WhichOneof("type")
        if kind == "navigation":
            pages = {p.page_script_hash: p.url_pathname for p in message.navigation.app_pages}
            page_hash = message.navigation.page_script_hash
        if kind != "delta" or message.delta.WhichOneof("type") != "new_element":
            continue
        element = message.delta.new_element
        element_kind = element.WhichOneof("type")
        if element_kind:  # the last write to a place wins (placeholders, progress loops)
            path = tuple(message.metadata.delta_path)
            by_path[path] = (element_kind, getattr(element, element_kind), message.delta.fragment_id)
    run = Run(seconds, page=pages.get(page_hash, ""))
    for path in sorted(by_path):
        kind, proto, fragment = by_path[path]
        if kind == "exception":
            run.exceptions.append(f"{proto.type}: {proto.message}")
        elif kind in _TEXT:
            run.texts.append((kind, getattr(proto, _TEXT[kind])))
        widget_id = getattr(proto, "id", "")
        if isinstance(widget_id, str) and widget_id.startswith("$$ID-") and not widget_id.endswith("-None"):
            key = widget_id.rsplit("-", 1)[-1]
            run.widgets[key] = (kind, proto)
            if fragment:
                run.fragments[key] = fragment
    return run


class Session:
    """One session: `await Session.open(url, page="position")`, then `select`, `click`, `trigger`, `upload`,
    `goto`; each returns the Run it caused. Close it with `await session.close()` (or `async with`)."""

    def __init__(self, url: str, socket, http: requests.Session):
        self.url, self._socket, self._http = url.rstrip("/"), socket, http
        self.session_id = ""
        self.page_hash = ""
        self.last: Run | None = None
        self.widgets: dict[str, tuple[str, object]] = {}  # the page's widgets, fragments' reruns merged in
        self.fragments: dict[str, str] = {}  # user key -> its fragment's id
        self.cached: set[str] = set()  # hashes of the cacheable messages received (the forward-message cache)

    @classmethod
    async def open(cls, url: str, page: str = "", query: str = "", timeout_s: float = 300) -> Session:
        url = url.rstrip("/")
        http = requests.Session()  # the first request sets the cookies a browser would keep
        await asyncio.to_thread(http.get, f"{url}/_stcore/health", timeout=timeout_s)
        cookies = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        stream = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/_stcore/stream"
        socket = await connect(
            stream,
            subprotocols=["streamlit"],
            max_size=None,
            open_timeout=timeout_s,
            additional_headers={"Cookie": cookies} if cookies else None,
        )
        session = cls(url, socket, http)
        try:
            await session._rerun([], page_name=page, query=query, timeout_s=timeout_s)
        except BaseException:
            await session.close()
            raise
        return session

    async def close(self) -> None:
        await self._socket.close()
        self._http.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def _receive_until_finished(self, timeout_s: float) -> list[ForwardMsg]:
        messages = []
        while True:
            message = ForwardMsg()
            message.ParseFromString(await asyncio.wait_for(self._socket.recv(), timeout_s))
            messages.append(message)
            if message.metadata.cacheable and message.hash:
                self.cached.add(message.hash)
            kind = message.WhichOneof("type")
            if kind == "new_session":
                self.session_id = message.new_session.initialize.session_id or self.session_id
            elif kind == "navigation":
                self.page_hash = message.navigation.page_script_hash
            elif kind == "script_finished" and message.script_finished in _DONE:
                return messages

    async def _rerun(
        self,
        widgets: list[WidgetState],
        page_name: str | None = None,
        query: str = "",
        timeout_s: float = 300,
        fragment: str = "",
    ) -> Run:
        message = BackMsg()
        state = message.rerun_script
        state.query_string = query
        state.fragment_id = fragment  # "" : the whole page
        state.cached_message_hashes.extend(sorted(self.cached))
        if page_name is not None:
            state.page_name = page_name  # a new page by its url path ("" = the default page)
        else:
            state.page_script_hash = self.page_hash  # stay where we are
        state.widget_states.widgets.extend(widgets)
        state.context_info.timezone = "UTC"
        state.context_info.locale = "en-US"
        started = time.perf_counter()
        await self._socket.send(message.SerializeToString())
        messages = await self._receive_until_finished(timeout_s)
        self.last = _read_run(messages, time.perf_counter() - started)
        if not fragment:  # a whole page: its widgets replace the last page's
            self.widgets, self.fragments = {}, {}
        self.widgets.update(self.last.widgets)
        self.fragments.update(self.last.fragments)
        return self.last

    def widget(self, key: str) -> tuple[str, object]:
        """(kind, element proto) of the widget with user key `key` on the page (its last run that drew it)."""
        if key not in self.widgets:
            raise ProtocolError(f"no widget with key {key!r} on this page; there are {sorted(self.widgets)}")
        return self.widgets[key]

    async def goto(self, page: str, query: str = "") -> Run:
        """Open another page of the app by its url path, as a link in the navigation does."""
        return await self._rerun([], page_name=page, query=query)

    async def rerun(self) -> Run:
        return await self._rerun([])

    async def select(self, key: str, option: str) -> Run:
        """Choose `option` (as the select box shows it) in the select box `key`."""
        kind, proto = self.widget(key)
        if option not in list(proto.options):
            raise ProtocolError(f"{key!r} has no option {option!r}; it has {list(proto.options)}")
        return await self._rerun([WidgetState(id=proto.id, string_value=option)], fragment=self.fragments.get(key, ""))

    def options(self, key: str) -> list[str]:
        return list(self.widget(key)[1].options)

    async def click(self, key: str) -> Run:
        """Press the button `key`."""
        _, proto = self.widget(key)
        return await self._rerun([WidgetState(id=proto.id, trigger_value=True)], fragment=self.fragments.get(key, ""))

    async def trigger(self, key: str, event: str, value) -> Run:
        """A components-v2 event (`setTriggerValue(event, value)` in the component's script), e.g. a pin."""
        _, proto = self.widget(key)
        state = WidgetState(
            id=f"$$STREAMLIT_INTERNAL_KEY_{proto.id}__events",
            json_trigger_value=json.dumps([{"event": event, "value": value}]),
        )
        return await self._rerun([state], fragment=self.fragments.get(key, ""))

    async def upload(self, key: str, name: str, data: bytes, content_type: str = "image/jpeg") -> Run:
        """Put a file into the file uploader `key`, as the browser does: ask the server for an upload URL over
        the socket, PUT the file there over HTTP with the XSRF cookie and header, then rerun with its info."""
        _, proto = self.widget(key)
        request_id = uuid.uuid4().hex
        message = BackMsg()
        message.file_urls_request.request_id = request_id
        message.file_urls_request.file_names.append(name)
        message.file_urls_request.session_id = self.session_id
        await self._socket.send(message.SerializeToString())
        urls = None
        while urls is None:
            reply = ForwardMsg()
            reply.ParseFromString(await asyncio.wait_for(self._socket.recv(), 60))
            if reply.WhichOneof("type") == "file_urls_response" and reply.file_urls_response.response_id == request_id:
                urls = reply.file_urls_response.file_urls[0]
        await asyncio.to_thread(self._put, urls.upload_url, name, data, content_type)
        state = WidgetState(id=proto.id)
        info = state.file_uploader_state_value.uploaded_file_info.add()
        info.file_id, info.name, info.size = urls.file_id, name, len(data)
        info.file_urls.CopyFrom(urls)
        return await self._rerun([state], fragment=self.fragments.get(key, ""))

    def _put(self, upload_url: str, name: str, data: bytes, content_type: str) -> None:
        token = self._http.cookies.get("_streamlit_xsrf", "")  # set by the first request, as in a browser
        response = self._http.put(
            self.url + upload_url,
            files={"file": (name, data, content_type)},
            headers={"X-Xsrftoken": token},
            timeout=120,
        )
        if response.status_code >= 300:
            raise ProtocolError(f"upload refused: HTTP {response.status_code} {response.text[:200]}")
