"""A request's header fields, looked up through an index of their lowered names: the client's
from the pipeline's first step on (addons.pipeline), the forwarded ones after the rewrite
(addons.upstream).

mitmproxy's `Headers` answers every lookup by lowering the name of each field in turn, and it
looks the request's headers up some fifteen times more after Warren has rewritten them (body
size, connection reuse, Host): a signed-in request, which carries Remote-User, Remote-Email,
Remote-Groups and the assertion, paid for those four fields on every one of those lookups.
Here the names are lowered once, the first time one is looked up, and again only after the
fields change (every change in mitmproxy's `MultiDict` assigns `fields` anew).

Every request's headers are made into these twice, and every field costs Python bytecode in
each pass over them; where a pass can be one call into C (building, indexing, serialising),
it is.
"""

from collections.abc import Iterable, Sequence
from operator import itemgetter

from mitmproxy import http

from core.headers import lowered_names

type _Fields = tuple[tuple[bytes, bytes], ...]
type _Index = dict[bytes, Sequence[bytes]]

_VALUE = itemgetter(1)


class IndexedHeaders(http.Headers):
    """`http.Headers` with the same answers; `get`, `in`, `[]` and `get_all` through an index."""

    _fields: tuple[tuple[bytes, bytes], ...]
    _index: _Index | None

    def __init__(self, fields: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._index = None
        super().__init__(fields)

    @classmethod
    def of(cls, fields: _Fields) -> "IndexedHeaders":
        """Fields that are already a `Headers`' (bytes pairs in a tuple), taken as they are:
        `Headers.__init__` checks and copies each field in Python."""
        headers = cls.__new__(cls)
        headers._fields = fields
        headers._index = None
        return headers

    @property  # a plain attribute in mitmproxy: a property here, so that a change is seen
    def fields(self) -> tuple[tuple[bytes, bytes], ...]:
        return self._fields

    @fields.setter
    def fields(self, value: tuple[tuple[bytes, bytes], ...]) -> None:
        self._fields = value
        self._index = None

    def set_all(self, name: str | bytes, values: Iterable[str | bytes]) -> None:
        # Setting Host (mitmproxy does, when the destination changes) keeps the index: the
        # name's new values are exactly the ones given (MultiDict.set_all).
        encoded = [_bytes(value) for value in values]
        index = self._index
        super().set_all(name, encoded)
        if index is not None:
            key = _bytes(name).lower()
            if encoded:
                index[key] = encoded
            else:
                index.pop(key, None)
            self._index = index

    def _values(self, name: str | bytes) -> Sequence[bytes] | None:
        index = self._index
        if index is None:
            index = self._index = _index_of(self._fields)
        return index.get(_bytes(name).lower())

    def get_all(self, name: str | bytes) -> list[str]:
        values = self._values(name)
        return [value.decode("utf-8", "surrogateescape") for value in values] if values else []

    def __getitem__(self, name: str | bytes) -> str:
        values = self._values(name)
        if not values:
            raise KeyError(name)
        return ", ".join(value.decode("utf-8", "surrogateescape") for value in values)

    def get(self, name: str | bytes, default: object = None) -> object:
        values = self._values(name)
        if not values:
            return default
        if len(values) == 1:  # nearly always: no join over a generator for it
            return values[0].decode("utf-8", "surrogateescape")
        return ", ".join(value.decode("utf-8", "surrogateescape") for value in values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str | bytes) and bool(self._values(name))

    def __bytes__(self) -> bytes:  # mitmproxy's, without a generator step per field
        fields = self._fields
        return b"\r\n".join(map(b": ".join, fields)) + b"\r\n" if fields else b""


def _index_of(fields: _Fields) -> _Index:
    # Nearly always every name comes once: each value its own one-tuple (zip), no Python step
    # per field.
    names = lowered_names(fields)
    if len(set(names)) == len(names):
        return dict(zip(names, zip(map(_VALUE, fields)), strict=True))
    index: dict[bytes, list[bytes]] = {}
    for name, (_name, value) in zip(names, fields, strict=True):  # a name twice
        index.setdefault(name, []).append(value)
    return dict(index)


def _bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
