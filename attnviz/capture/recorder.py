"""The recorder of the current forward call, kept in a ContextVar.

Streamlit serves each browser session from its own thread while one cached
model is shared by all of them, so no module keeps "the last map" in an
attribute. The recorder of the current call lives in a `contextvars.ContextVar`;
attention modules call `record(self, ...)`, which writes into that recorder
when one is active and does nothing otherwise. Threads start with an empty
context, so two threads running the same model each fill their own recorder.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from torch import nn

from attnviz.capture.records import Record, of_type
from attnviz.i18n import Phrase

__all__ = [
    "split_name",
    "Skipped",
    "Recorder",
    "record",
    "is_recording",
    "wants_features",
    "current_recorder",
    "recording",
]

_current_recorder: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar("attnviz_recorder", default=None)


def split_name(key: str) -> tuple[str, str, int]:
    """(module path, part, call) of a record's name as `Recorder.add` writes it, "path:part#n": part "" for a
    module's only record of a call, call 0 for the first call and n for the (n+1)-th ("cc.cca#1")."""
    name, call = key, 0
    head, sep, tail = key.rpartition("#")
    if sep and tail.isdigit():
        name, call = head, int(tail)
    path, sep, part = name.rpartition(":")
    return (path, part, call) if sep and path else (name, "", call)


@dataclass(frozen=True)
class Skipped:
    """Something a reader saw in a module and did not record, and why (the dataflow reader's softmaxes and gates
    that are not drawn)."""

    module: str  # the module's path in the model
    what: Phrase  # what it saw and why it left it, in no language yet


class Recorder(Mapping):
    """The attention records of one forward call, keyed by module name, and what the readers left unrecorded.

    A module called twice in one forward gets keys "name" and "name#1".

    Records and notes are kept in call order. A reader that makes a module's records after the module has returned
    (the dataflow reader checks SDPA calls when the pass ends) takes a ticket when it returns (`reserve`) and
    gives it with them: they are then put where the module's return put them.
    """

    def __init__(self, model: nn.Module | None = None, keep_features: bool = False):
        self._model = model
        self.keep_features = keep_features
        self._names: dict[int, str] | None = None
        self._named: set[int] = set()  # ids whose kept name this recorder has checked
        self._records: dict[str, Record] = {}
        self._tickets: dict[str, int] = {}  # key -> its place in call order
        self._skip_tickets: list[int] = []  # of `skipped`, entry by entry
        self._issued = 0  # the last ticket given
        self._last = 0  # the latest place of a record so far
        self._in_order = True  # whether `_records` is in call order
        self.scratch: dict[int, dict] = {}  # per-module parts gathered by readers' hooks during one call, by id
        self.skipped: list[Skipped] = []  # what a reader saw and did not record, in call order

    def name_of(self, module: nn.Module) -> str:
        """The module's path in the model ("layer3.0.attn"); the class name and id for one outside it."""
        if self._names is None:
            self._names = _names_in(self._model) if self._model is not None else {}
        name = self._names.get(id(module))
        if id(module) not in self._named and self._model is not None:
            if name is None or not _still_at(self._model, name, module):  # the model changed since they were kept
                self._names = _names_in(self._model, fresh=True)
                name = self._names.get(id(module))
            self._named.add(id(module))
        return name if name is not None else f"{type(module).__name__}@{id(module):x}"

    def reserve(self) -> int:
        """A place in call order, for records and notes given later (`add` and `skip` with `ticket`)."""
        self._issued += 1
        return self._issued

    def add(self, module: nn.Module, rec: Record, part: str = "", ticket: int | None = None) -> None:
        """Keep `rec` under the module's name ("name:part" for one of several records of one call), in call order
        (at `ticket`'s place when given)."""
        name = self.name_of(module) + (f":{part}" if part else "")
        key, n = name, 1
        while key in self._records:
            key, n = f"{name}#{n}", n + 1
        place = self._place(ticket)
        self._in_order = self._in_order and place >= self._last
        self._last = max(self._last, place)
        self._records[key] = rec
        self._tickets[key] = place

    def skip(self, module: nn.Module, what: Phrase, ticket: int | None = None) -> None:
        """Note that a reader saw `what` in `module` and did not record it (at `ticket`'s place when given)."""
        place = self._place(ticket)
        at = len(self._skip_tickets)
        while at and self._skip_tickets[at - 1] > place:  # a late note goes back to its place (a short walk)
            at -= 1
        self._skip_tickets.insert(at, place)
        self.skipped.insert(at, Skipped(self.name_of(module), what))

    def _place(self, ticket: int | None) -> int:
        return self.reserve() if ticket is None else ticket

    def _ordered(self) -> dict[str, Record]:
        if not self._in_order:
            keys = sorted(self._records, key=self._tickets.__getitem__)  # stable: one call's records keep their order
            self._records = {key: self._records[key] for key in keys}
            self._in_order = True
        return self._records

    def __getitem__(self, key: str) -> Record:
        try:
            return self._records[key]
        except KeyError:
            known = ", ".join(self._ordered()) or "none"
            raise KeyError(f"no attention recorded for {key!r}; recorded: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._ordered())

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> dict[str, Record]:
        """A plain dict of the records, in call order (holds no reference to the model)."""
        return dict(self._ordered())

    def of_type(self, record_type: type) -> dict[str, Record]:
        """The records of one type, in call order."""
        return of_type(self._ordered(), record_type)


# model -> {id(module): its path}: every capture names its records, and walking the model for it cost as much as
# reading a layer; kept weakly, and checked at each use (`_still_at`)
_model_names: weakref.WeakKeyDictionary[nn.Module, dict[int, str]] = weakref.WeakKeyDictionary()


def _names_in(model: nn.Module, fresh: bool = False) -> dict[int, str]:
    names = None if fresh else _model_names.get(model)
    if names is None:
        names = {}
        for name, sub in model.named_modules():
            names.setdefault(id(sub), name or type(sub).__name__)
        _model_names[model] = names
    return names


def _still_at(model: nn.Module, path: str, module: nn.Module) -> bool:
    """Whether `module` is still the model's submodule at `path` (a kept name is right only then)."""
    if module is model:
        return True
    try:
        return model.get_submodule(path) is module
    except AttributeError:
        return False


def is_recording() -> bool:
    """True inside `capture(...)` on this thread / context."""
    return _current_recorder.get() is not None


def wants_features() -> bool:
    """True when the current recorder keeps each module's input feature map."""
    recorder = _current_recorder.get()
    return recorder is not None and recorder.keep_features


def record(module: nn.Module, rec: Record) -> None:
    """Give `rec` to the current call's recorder, if there is one."""
    recorder = _current_recorder.get()
    if recorder is not None:
        recorder.add(module, rec)


def current_recorder() -> Recorder | None:
    """The recorder of this context (None outside `capture`)."""
    return _current_recorder.get()


@contextmanager
def recording(recorder: Recorder) -> Iterator[Recorder]:
    """Make `recorder` the current one in this context for the block."""
    token = _current_recorder.set(recorder)
    try:
        yield recorder
    finally:
        _current_recorder.reset(token)
