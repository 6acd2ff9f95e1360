"""Schema helpers shared by the two file formats that build a table: scenarios (TOML, see
``scenario``) and snapshots (JSON Lines, see ``snapshot``).

Both read parsed data (dicts, lists, scalars) and must refuse anything malformed with one error
that names the file and the entry (``FILE: process[3].nice: expected ...``), changing nothing.
The typed getters here check the type and the range of one value and return it, or raise the
``SchemaError`` their ``Schema`` builds; a format supplies how an error names its place
(``Schema.error``) and how its values are written back in messages (``Notation``: TOML or JSON
spelling, so a message quotes the value as the user wrote it).

Booleans are never integers here (``true`` is not 1), as in both formats.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from .kernel import KernelError


class SchemaError(KernelError):
    """A file that builds a table is malformed (EINVAL), a call it replays fails (that call's
    errno), or it cannot be read (the OSError's errno). ``str()`` is the message alone:
    ``FILE: ENTRY: reason``."""

    def __str__(self) -> str:
        return self.strerror or ""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def open_input(path: str | os.PathLike[str], *, what: str, max_bytes: int,
               error: type[SchemaError] = SchemaError) -> BinaryIO:
    """Open an input file (a snapshot, a scenario) for reading, refusing what cannot be one.

    Only a regular file is read: a directory is EISDIR, a device node, FIFO or socket EINVAL
    (``/dev/zero`` would be read forever; opening a FIFO does not wait for a writer: O_NONBLOCK).
    A file over ``max_bytes`` is EFBIG. The message is ``PATH: reason``, naming ``what`` the file
    was meant to be; an OSError keeps its errno.
    """
    source = os.fspath(path)
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise error(e.errno or errno.EIO, f"{source}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
            raise error(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL,
                        f"{source}: is {kind}; {what} is read only from a regular file")
        if st.st_size > max_bytes:
            raise error(errno.EFBIG, f"{source}: {st.st_size:,} bytes; {what} is at most "
                        f"{max_bytes:,} bytes")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


#: what a parser's RecursionError means in a message
TOO_DEEP = "nested deeper than the parser allows (about 1000 levels)"


def _toml_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Notation:
    """How values are written back in messages: ``kind(v)`` ("an integer"), ``show(v)`` (the
    value as the file would spell it, cut at 60 characters) and ``got(v)`` (what follows
    "got")."""

    name: str
    #: the word for each container and number type (TOML says "a table", JSON "an object")
    words: tuple[tuple[type, str], ...]
    #: a value as written, or None to show it by its kind (JSON does so for containers)
    spell: Callable[[object], str | None]
    #: after a value that is not a string, say its kind too: ``got 1 (an integer)``
    kind_after: bool

    def kind(self, v: object) -> str:
        if isinstance(v, bool):
            return "a boolean"
        for t, word in self.words:
            if type(v) is t:
                return word
        return f"a {type(v).__name__}" if self.kind_after else type(v).__name__

    def show(self, v: object) -> str:
        s = self.spell(v)
        if s is None:
            s = self.kind(v)
        return s if len(s) <= 60 else s[:56] + "..."

    def got(self, v: object) -> str:
        if self.kind_after and not isinstance(v, str):
            return f"{self.show(v)} ({self.kind(v)})"
        return self.show(v)


def _toml_spell(v: object) -> str | None:
    if isinstance(v, str):
        return _toml_quote(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def _json_spell(v: object) -> str | None:
    return json.dumps(v) if isinstance(v, (str, int, float, bool, type(None))) else None


TOML = Notation("TOML", ((int, "an integer"), (float, "a float"), (str, "a string"),
                         (list, "an array"), (dict, "a table")), _toml_spell, True)
JSON = Notation("JSON", ((int, "an integer"), (float, "a number"), (str, "a string"),
                         (list, "an array"), (dict, "an object"), (type(None), "null")), _json_spell, False)


def is_int(v: object) -> bool:
    """An integer that is not a boolean."""
    return isinstance(v, int) and not isinstance(v, bool)


class Schema:
    """Typed getters over parsed data. ``path`` names the value in messages; ``error`` (which a
    format may override) turns a path and a reason into the ``SchemaError`` raised."""

    error_type: type[SchemaError] = SchemaError

    def __init__(self, source: str, notation: Notation) -> None:
        self.source = source
        self.notation = notation

    def error(self, path: str, reason: str, err: int = errno.EINVAL) -> SchemaError:
        """``FILE: path: reason`` (``FILE: reason`` for the whole file)."""
        return self.error_type(err, f"{self.source}: {path}: {reason}" if path
                               else f"{self.source}: {reason}")

    def expect(self, path: str, value: object, what: str) -> SchemaError:
        return self.error(path, f"expected {what}, got {self.notation.got(value)}")

    def keys(self, table: dict[str, Any], allowed: Iterable[str], path_of: Callable[[str], str]) -> None:
        """EINVAL naming the first key of ``table`` not in ``allowed`` (``path_of(key)``)."""
        allowed = set(allowed)
        for key in table:
            if key not in allowed:
                raise self.error(path_of(key), "unknown key; valid keys: " + ", ".join(sorted(allowed)))

    def int_(self, v: object, path: str, lo: int, hi: int) -> int:
        if not is_int(v) or not lo <= v <= hi:  # type: ignore[operator]
            raise self.expect(path, v, f"an integer in {lo}..{hi}")
        return v  # type: ignore[return-value]

    def bool_(self, v: object, path: str) -> bool:
        if not isinstance(v, bool):
            raise self.expect(path, v, "true or false")
        return v

    def str_(self, v: object, path: str) -> str:
        if not isinstance(v, str):
            raise self.expect(path, v, "a string")
        return v

    def strs(self, v: object, path: str) -> list[str]:
        if not (isinstance(v, list) and all(isinstance(s, str) for s in v)):
            raise self.expect(path, v, "an array of strings")
        return v

    def ints(self, v: object, path: str, lo: int, hi: int) -> tuple[int, ...]:
        """A non-empty array of integers in lo..hi."""
        if not (isinstance(v, list) and v and all(is_int(n) and lo <= n <= hi for n in v)):
            raise self.expect(path, v, f"a non-empty array of integers in {lo}..{hi}")
        return tuple(v)

    def seconds(self, v: object, path: str) -> int:
        """A number of seconds (int or float, 0..1e10) as nanoseconds."""
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) \
                or not 0 <= v <= 1e10:
            raise self.expect(path, v, "a number of seconds >= 0")
        return round(v * 1_000_000_000)

    def array(self, v: object, path: str, n: int | None = None) -> list[Any]:
        """An array (of exactly ``n`` items when given)."""
        if not isinstance(v, list) or (n is not None and len(v) != n):
            raise self.expect(path, v, "an array" if n is None else f"an array of {n} items")
        return v

    def one_of(self, v: object, path: str, choices: Iterable[object]) -> Any:
        """One of ``choices`` (compared by type too: ``1`` is not ``true``)."""
        choices = tuple(choices)
        if not any(type(v) is type(c) and v == c for c in choices):
            raise self.expect(path, v, "one of " + ", ".join(self.notation.show(c) for c in choices))
        return v
