"""A model of the unpickler: it reads the opcodes `pickle.loads` reads, in the order it reads them, and records what
the unpickler would import and call, without importing or calling anything.

Written against CPython's `Lib/pickle.py` (`_Unpickler.load_*`, which joblib uses) and `Modules/_pickle.c` (what
`pickle.load`/`pickle.loads` use). Where the two accept different inputs, the machine accepts the union, so it never
stops reading where either real unpickler would go on: text numbers (`I0x1`, `I010`, `I1_0`, `I5\\0junk`), frames
(C reads them transparently), lines cut by the end of the data.

Outcome of a walk, per stream:
- the unpickler would raise before importing or calling anything: the bytes are inert to pickle;
- every import is an exact (module, qualified name) pair of the allow-list and only imported objects are called:
  safe as far as the unpickler goes (what an allowed class does with its own state is its own logic);
- otherwise a finding: an import outside the allow-list, or a step whose effect cannot be worked out statically
  ("cannot be shown safe"): a computed import name, a call of an object built at load time, a copyreg extension code,
  a cap reached.

Two loaders read a stream differently and both are walked: `pickle.load` in a loop (every pickle of the stream, as
legacy `torch.load` reads five), and `joblib.load`, whose NumpyUnpickler reads raw array bytes from the file right
after each `NumpyArrayWrapper` BUILD (and a nested pickle for object arrays).

`torch.load` is modelled where it departs from `pickle.load` (torch/serialization.py, `_load` and `_legacy_load`):
its persistent_load turns a `('storage', <storage class>, key, location, numel[, view])` id into a storage and, in
the legacy format, a `('module', <class>, file, source)` id into that class; and a legacy file (magic number,
protocol version, system info, the object, the storage keys) is followed by each listed storage's raw bytes (an
8-byte element count, then the data), which torch reads as data: the walk steps over exactly those bytes and goes on
with whatever follows them. A legacy file whose storages do not match its keys cannot be shown safe.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import struct
import sys
import warnings
from dataclasses import dataclass, field

from .pickle_allowlist import is_allowed

HIGHEST_PROTOCOL = 5
LINE_KEEP = 64 * 1024  # bytes of a text line kept to parse it; a longer line is read through, its value is not kept
NAME_KEEP = 1024  # longer strings are kept as "a str" without their text
CONTAINER_KEEP = 1024  # items kept per list, tuple or dict; beyond, only the container's type is known
RETAINED_BUDGET = 32 * 1024 * 1024  # characters and items kept across one walk, whatever the file's size
MAX_STACK = 5_000_000
MAX_MEMO = 4_000_000
MAX_FRAME = 16 * 1024 * 1024  # joblib's (pure Python) unpickler buffers a whole frame; larger frames are not modelled
MAX_PICKLES = 100_000
CHUNK = 1024 * 1024

NUMPY_ARRAY_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
NUMPY_DTYPE = ("numpy", "dtype")
RECONSTRUCTOR = ("copyreg", "_reconstructor")
WRAPPER_FIELDS = ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
JOBLIB_DEFAULT_ALIGNMENT = 16
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER, the first pickle of a legacy file
TORCH_LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION, the second
MAX_STORAGES = 1_000_000  # storages one pickle may name; the legacy format's key list may be this long too
# Element size of each class a torch storage id may name (torch.storage._dtype_to_storage_type_map; the untyped storage
# of newer dtypes such as uint16 and float8 is bytes).
TORCH_STORAGE_SIZES = {("torch.storage", "UntypedStorage"): 1} | {
    ("torch", name): size
    for name, size in (
        ("BFloat16Storage", 2), ("BoolStorage", 1), ("ByteStorage", 1), ("CharStorage", 1), ("ComplexDoubleStorage", 16),
        ("ComplexFloatStorage", 8), ("DoubleStorage", 8), ("FloatStorage", 4), ("HalfStorage", 2), ("IntStorage", 4),
        ("LongStorage", 8), ("QInt32Storage", 4), ("QInt8Storage", 1), ("QUInt2x4Storage", 1), ("QUInt4x2Storage", 1),
        ("QUInt8Storage", 1), ("ShortStorage", 2),
    )
}


class Rejected(Exception):
    """The real unpickler raises here: the load stops, nothing after this point runs."""


class Undecidable(Exception):
    """What the unpickler would do next cannot be worked out statically: cannot be shown safe."""


# Values. Plain data the pickle builds is kept as Python values (str, int, tuple...) or as these small classes;
# anything built by a call is an Obj. `Opaque` is plain data whose content was not kept (too long).


@dataclass(eq=False)
class Global:
    module: str
    name: str

    @property
    def pair(self) -> tuple[str, str]:
        return (self.module, self.name)


@dataclass(eq=False)
class Obj:
    """The result of a call or of `cls.__new__`: an instance of `cls` when that is known."""

    cls: Global | None = None
    args: object = None
    attrs: dict = field(default_factory=dict)
    state: object = None
    built: bool = False


@dataclass(eq=False)
class Opaque:
    kind: str  # "str", "bytes", "int", "tuple", ...


@dataclass(eq=False)
class List:
    items: list | None = field(default_factory=list)


@dataclass(eq=False)
class Dict:
    items: dict | None = field(default_factory=dict)  # str keys only are kept; None once it grew past the cap


@dataclass(eq=False)
class SetOf:
    pass


UNKNOWN = Obj()  # e.g. what persistent_load, an extension code or an out-of-band buffer gives
PLAIN = (type(None), bool, int, float, str, bytes, tuple, List, Dict, SetOf, Opaque)


def _is_plain(value) -> bool:
    return isinstance(value, PLAIN)


@dataclass
class Walk:
    """What one walk of a stream found."""

    imports: set = field(default_factory=set)  # (module, name) pairs the unpickler would import
    unsafe: list = field(default_factory=list)  # findings, in the order met
    pickles: int = 0  # pickles read to their STOP
    wrappers: int = 0  # NumpyArrayWrapper BUILDs met
    storage_keys: set = field(default_factory=set)  # keys of the torch storages persistent ids name (a zip's data/<key>)
    stopped: str = ""  # why the walk ended before the end of the data ("" when it reached it)

    def flag(self, message: str) -> None:
        if message not in self.unsafe:
            self.unsafe.append(message)


class Source:
    """Buffered reads over a binary stream, with the end of data reported as short reads, like a file."""

    def __init__(self, stream, on_progress=None):
        self.stream = stream
        self.buffer = b""
        self.offset = 0
        self.position = 0
        self.on_progress = on_progress

    def _fill(self) -> bool:
        chunk = self.stream.read(CHUNK)
        if not chunk:
            return False
        self.buffer = self.buffer[self.offset :] + chunk
        self.offset = 0
        if self.on_progress:
            self.on_progress(len(chunk))
        return True

    def read(self, n: int) -> bytes:
        while len(self.buffer) - self.offset < n and self._fill():
            pass
        data = self.buffer[self.offset : self.offset + n]
        self.offset += len(data)
        self.position += len(data)
        return data

    def skip(self, n: int) -> int:
        """Consume n bytes without keeping them; returns how many were there."""
        done = 0
        while done < n:
            if self.offset >= len(self.buffer) and not self._fill():
                break
            step = min(n - done, len(self.buffer) - self.offset)
            self.offset += step
            done += step
        self.position += done
        return done

    def chunks(self, n: int):
        """Yield up to n bytes in pieces."""
        left = n
        while left > 0:
            if self.offset >= len(self.buffer) and not self._fill():
                return
            piece = self.buffer[self.offset : self.offset + min(left, CHUNK)]
            self.offset += len(piece)
            self.position += len(piece)
            left -= len(piece)
            yield piece

    def readline(self) -> tuple[bytes, int, int]:
        """A line as `file.readline()` gives it: (first LINE_KEEP bytes, full length, last byte or -1)."""
        kept, total, last = b"", 0, -1
        while True:
            if self.offset >= len(self.buffer) and not self._fill():
                return kept, total, last
            end = self.buffer.find(b"\n", self.offset)
            stop = len(self.buffer) if end < 0 else end + 1
            piece = self.buffer[self.offset : stop]
            self.offset = stop
            self.position += len(piece)
            if len(kept) < LINE_KEEP:
                kept += piece[: LINE_KEEP - len(kept)]
            total += len(piece)
            last = piece[-1]
            if end >= 0:
                return kept, total, last

    def at_end(self) -> bool:
        return self.offset >= len(self.buffer) and not self._fill()


class Frames:
    """Reads as joblib's pure-Python unpickler does them: a FRAME's bytes are read ahead into a buffer
    (`pickle._Unframer`), so raw reads from the file (array data) start after the frame, not after the opcode."""

    def __init__(self, source: Source):
        self.source = source
        self.frame: bytes | None = None
        self.frame_offset = 0

    def load_frame(self, size: int) -> None:
        if self.frame is not None and self.frame_offset < len(self.frame):
            raise Rejected("beginning of a new frame before end of current frame")
        if size > MAX_FRAME:
            raise Undecidable(f"a frame of {size} bytes is larger than the scanner buffers ({MAX_FRAME})")
        self.frame = self.source.read(size)
        self.frame_offset = 0

    def read(self, n: int) -> bytes:
        if self.frame is not None:
            data = self.frame[self.frame_offset : self.frame_offset + n]
            self.frame_offset += len(data)
            if not data and n != 0:
                self.frame = None
                return self.source.read(n)
            if len(data) < n:
                raise Rejected("pickle exhausted before end of frame")
            return data
        return self.source.read(n)

    def skip(self, n: int) -> int:
        if self.frame is not None and n > 0:
            return len(self.read(n))
        return self.source.skip(n)

    def chunks(self, n: int):
        if self.frame is not None and n > 0:
            yield self.read(n)
            return
        yield from self.source.chunks(n)

    def readline(self) -> tuple[bytes, int, int]:
        if self.frame is not None:
            end = self.frame.find(b"\n", self.frame_offset)
            stop = len(self.frame) if end < 0 else end + 1
            data = self.frame[self.frame_offset : stop]
            self.frame_offset = stop
            if not data:
                self.frame = None
                return self.source.readline()
            if data[-1] != 0x0A:
                raise Rejected("pickle exhausted before end of frame")
            return data[:LINE_KEEP], len(data), data[-1]
        return self.source.readline()

    def at_end(self) -> bool:
        return (self.frame is None or self.frame_offset >= len(self.frame)) and self.source.at_end()


# Text literals. Each returns the value or raises Rejected when both unpicklers reject the line.


def _c_strtol(text: bytes) -> int | None:
    """C `strtol(s, &end, 0)` as load_int uses it: the value when the number ends at '\\n' or the string's end (NUL)."""
    s = text.split(b"\x00", 1)[0]
    i, n = 0, len(s)
    while i < n and s[i] in b" \t\n\v\f\r":
        i += 1
    sign = 1
    if i < n and s[i] in b"+-":
        sign = -1 if s[i] == 0x2D else 1
        i += 1
    if s[i : i + 2].lower() == b"0x" and i + 2 < n and s[i + 2] in b"0123456789abcdefABCDEF":
        base, digits, i = 16, b"0123456789abcdefABCDEF", i + 2
    elif s[i : i + 1] == b"0":
        base, digits = 8, b"01234567"
    else:
        base, digits = 10, b"0123456789"
    start = i
    while i < n and s[i] in digits:
        i += 1
    if i == start or (i < n and s[i] != 0x0A):
        return None
    value = sign * int(s[start:i], base)
    return value if -(2**63) <= value < 2**63 else None  # on overflow C falls back to PyLong_FromString


def _c_long_from_string(text: bytes, base: int) -> int | None:
    """C `PyLong_FromString(s, NULL, base)`: the string stops at the first NUL; surrounding whitespace allowed."""
    head = text.split(b"\x00", 1)[0]
    try:
        return int(head.decode("ascii"), base)
    except (ValueError, UnicodeDecodeError):
        return None


def _py_int(text: bytes, base: int) -> int | None:
    try:
        return int(text, base)
    except ValueError:
        return None


def parse_int_line(line: bytes, total: int) -> int | bool | Opaque:
    if total > len(line):
        return Opaque("int")  # a number longer than we keep: taken as accepted
    if line in (b"00\n", b"01\n"):
        return line == b"01\n"
    value = _py_int(line, 0)
    if value is not None:
        return value
    if len(line) >= 2:
        x = _c_strtol(line)
        if x is not None:
            return bool(x) if len(line) == 3 and x in (0, 1) else x
        value = _c_long_from_string(line, 0)
        if value is not None:
            return value
    raise Rejected(f"INT argument {line[:40]!r} is not a number")


def parse_long_line(line: bytes, total: int) -> int | Opaque:
    if total > len(line):
        return Opaque("int")
    body = line[:-1]
    if body[-1:] == b"L":
        body = body[:-1]
    value = _py_int(body, 0)
    if value is not None:
        return value
    if len(line) >= 2:
        c_text = line[:-2] + b"\x00" if line[-2:-1] == b"L" else line
        value = _c_long_from_string(c_text, 0)
        if value is not None:
            return value
    raise Rejected(f"LONG argument {line[:40]!r} is not a number")


def parse_float_line(line: bytes, total: int) -> float | Opaque:
    if total > len(line):
        return Opaque("float")
    try:
        return float(line[:-1])
    except ValueError:
        pass
    head = line.split(b"\n", 1)[0].split(b"\x00", 1)[0]
    if len(line) >= 2 and len(head) < len(line) and head and not any(c in head for c in b" \t\r\v\f_"):
        try:
            return float(head)
        except ValueError:
            pass
    raise Rejected(f"FLOAT argument {line[:40]!r} is not a number")


def parse_memo_index(line: bytes, total: int) -> int:
    if total > len(line):
        raise Undecidable("a memo index longer than the scanner reads")
    value = _py_int(line[:-1], 10)
    if value is None and len(line) >= 2:
        value = _c_long_from_string(line, 10)
    if value is None:
        raise Rejected(f"memo index {line[:40]!r} is not a number")
    return value


def _kept_str(text: str):
    return text if len(text) <= NAME_KEEP else Opaque("str")


class Machine:
    """One walk of one stream, as one loader reads it.

    joblib=False: `pickle.load` (C, or the Python one) called again and again on the stream.
    joblib=True: joblib's NumpyUnpickler, which after a NumpyArrayWrapper BUILD reads the array from the raw file.
    """

    def __init__(self, stream, *, joblib: bool = False, on_progress=None):
        self.source = Source(stream, on_progress)
        self.reader = Frames(self.source) if joblib else self.source
        self.joblib = joblib
        self.walk = Walk()
        self.memo: dict[int, object] = {}
        self.retained = 0
        self.firsts: list = []  # the values of the first two pickles: a legacy torch file's magic number and version
        self.legacy_storages: dict = {}  # key -> (element size, count) of the storages a legacy file's object names

    # The stack, as pickle.py keeps it: the items above the last MARK, and the stacks below each MARK.

    def _reset(self) -> None:
        self.stack: list = []
        self.metastack: list[list] = []
        self.depth = 0
        self.proto = 0
        self.effects = 0  # imports and calls since this pickle began
        self.pending_extension = ""  # an EXT lookup, judged once the unpickler gets past the next opcode
        self.wrapper_seen = False
        self.result = None  # what STOP returned
        self.storages: dict = {}  # torch storages this pickle's persistent ids name: key -> (element size, count)
        # a legacy torch file's key list may name every storage; other lists keep CONTAINER_KEEP items
        self.container_keep = MAX_STORAGES if self._legacy() and self.walk.pickles == 4 else CONTAINER_KEEP

    def push(self, value) -> None:
        self.stack.append(value)
        self.depth += 1
        if self.depth > MAX_STACK:
            raise Undecidable(f"the unpickler's stack would hold more than {MAX_STACK} items")

    def pop(self):
        if not self.stack:
            raise Rejected("unpickling stack underflow")
        self.depth -= 1
        return self.stack.pop()

    def top(self):
        if not self.stack:
            raise Rejected("unpickling stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list:
        if not self.metastack:
            raise Rejected("could not find MARK")
        items = self.stack
        self.stack = self.metastack.pop()
        self.depth -= len(items)
        return items

    def keep(self, cost: int) -> bool:
        """Whether there is budget left to keep a value's content (memory stays bounded whatever the file)."""
        if self.retained + cost > RETAINED_BUDGET:
            return False
        self.retained += cost
        return True

    # Reading.

    def read_exact(self, n: int) -> bytes:
        data = self.reader.read(n)
        if len(data) < n:
            raise Rejected("pickle data was truncated")
        return data

    def read_line(self) -> tuple[bytes, int]:
        line, total, last = self.reader.readline()
        if total == 0:
            raise Rejected("pickle data was truncated")
        return line, total

    def read_text(self, n: int, *, utf8: bool) -> object:
        """A string or bytes payload of n bytes: decoded (UTF-8, surrogatepass) when utf8, kept when short."""
        if n > sys.maxsize:
            raise Rejected("size exceeds the system's maximum")
        decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass") if utf8 else None
        head, seen = [], 0
        for piece in self.reader.chunks(n):
            seen += len(piece)
            if decoder:
                try:
                    text = decoder.decode(piece, final=False)
                except UnicodeDecodeError as exc:
                    raise Rejected(f"invalid UTF-8 in a string: {exc.reason}") from None
                if sum(map(len, head)) <= NAME_KEEP:
                    head.append(text)
            elif seen <= NAME_KEEP:
                head.append(piece)
        if seen < n:
            raise Rejected("pickle data was truncated")
        if decoder:
            try:
                head.append(decoder.decode(b"", final=True))
            except UnicodeDecodeError as exc:
                raise Rejected(f"invalid UTF-8 in a string: {exc.reason}") from None
            text = "".join(head)
            return text if n <= NAME_KEEP and self.keep(len(text)) else Opaque("str")
        return b"".join(head) if n <= NAME_KEEP and self.keep(n) else Opaque("bytes")

    def u(self, fmt: str):
        return struct.unpack(fmt, self.read_exact(struct.calcsize(fmt)))[0]

    # The walk.

    def run(self) -> Walk:
        """Walk every pickle of the stream until its end, or until the unpickler would stop."""
        try:
            while self.walk.pickles < MAX_PICKLES:
                if self.reader.at_end():
                    return self.walk
                self._reset()
                self.load_one()
                self.walk.pickles += 1
                self._after_pickle()
            raise Undecidable(f"more than {MAX_PICKLES} pickles in one stream")
        except Rejected as exc:
            where = f"pickle {self.walk.pickles + 1} at byte {self.source.position}"
            self.walk.stopped = f"{where}: {exc}"
            if self.effects and not (self.wrapper_seen and not self.joblib):
                # The unpickler already imported or called something when it fails: part of a pickle ran.
                self.walk.flag(f"cannot be shown safe: {where} stops parsing ({exc}) after the unpickler imported or called something")
        except Undecidable as exc:
            self.walk.flag(f"cannot be shown safe: {exc}")
            self.walk.stopped = str(exc)
        return self.walk

    def _legacy(self) -> bool:
        """Whether torch.load reads this stream as a legacy file: its own checks of the first two pickles pass."""
        magic = self.firsts[:1] == [TORCH_LEGACY_MAGIC] and type(self.firsts[0]) is int
        return magic and len(self.firsts) == 2 and type(self.firsts[1]) in (int, float, bool) and self.firsts[1] == TORCH_LEGACY_PROTOCOL

    def _after_pickle(self) -> None:
        count = self.walk.pickles
        if count <= 2:
            self.firsts.append(self.result)
        elif count == 4 and self._legacy():
            self.legacy_storages = self.storages  # only the object (4th pickle) is loaded with a persistent_load
        elif count == 5 and self._legacy():
            self._skip_legacy_storages(self.result)

    def _skip_legacy_storages(self, keys) -> None:
        """`_legacy_load` after the key list: for each key, `_set_from_file` reads an int64 element count (it must be
        the storage's) and that many elements of raw data. Then torch.load returns; the walk goes on as pickle.load."""
        if not isinstance(keys, List) or keys.items is None:
            raise Undecidable("the storage key list of a legacy torch file cannot be worked out")
        for key in keys.items:
            try:
                size, count = self.legacy_storages[key]
            except (KeyError, TypeError):
                raise Undecidable(f"a legacy torch file lists a storage its object does not name ({str(key)[:40]!r})") from None
            stored = self.reader.read(8)
            if len(stored) < 8 or int.from_bytes(stored, "little", signed=True) != count:
                raise Undecidable(f"the raw storage {str(key)[:40]!r} of a legacy torch file does not hold the {count} elements it names")
            if self.reader.skip(count * size) < count * size:
                raise Undecidable(f"a legacy torch file ends inside its raw storage {str(key)[:40]!r}")

    def persistent_load(self, pid) -> object:
        """What BINPERSID gives. pickle.load refuses every persistent id, torch.load all but its own two shapes, which
        are modelled; any other id is some other loader's business (UNKNOWN: calling it is a finding)."""
        if not (isinstance(pid, tuple) and pid):
            return UNKNOWN
        kind = pid[0].decode("latin-1") if isinstance(pid[0], bytes) else pid[0]  # torch's _maybe_decode_ascii
        if kind == "module" and len(pid) == 4:
            return pid[1]  # legacy torch.load returns the class the id names (its import is judged like any other)
        if kind != "storage":
            return UNKNOWN
        storage_type, key, location, count, view = (*pid[1:], None)[:5] if len(pid) in (5, 6) else (None,) * 5
        size = TORCH_STORAGE_SIZES.get(storage_type.pair) if isinstance(storage_type, Global) else None
        if (
            size is None
            or not isinstance(key, (str, int))
            or not isinstance(location, (str, bytes))
            or type(count) is not int
            or count < 0
            or not (view is None or (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], (str, int))
                                     and all(type(v) is int and v >= 0 for v in view[1:])))
        ):
            raise Undecidable("a torch storage id that is not (storage class, key, location, element count[, view])")
        self._storage(key, size, count)
        if view is not None:
            self._storage(view[0], size, view[2])
        return Obj(cls=storage_type, args="a torch storage")

    def _storage(self, key, size: int, count: int) -> None:
        if key not in self.storages and len(self.storages) >= MAX_STORAGES:
            raise Undecidable(f"a pickle naming more than {MAX_STORAGES} torch storages")
        self.storages.setdefault(key, (size, count))  # torch keeps the first storage loaded under a key
        self.walk.storage_keys.add(str(key))

    def load_one(self) -> None:
        dispatch = DISPATCH
        read = self.reader.read
        while True:
            key = read(1)
            if not key:
                raise Rejected("pickle data was truncated (EOF)")
            handler = dispatch.get(key[0])
            if handler is None:
                raise Rejected(f"invalid load key {key!r}")
            pending = self.pending_extension
            outcome = handler(self)
            if pending:
                # The unpickler got past the opcode after EXT, so the looked-up object is in play (an unregistered
                # code, or an opcode it stops at right away, as the first bytes of many binary files read, are inert).
                self.effects += 1
                self.walk.flag(pending)
                if self.pending_extension is pending:
                    self.pending_extension = ""
            if outcome is STOP:
                return

    # Imports and calls.

    def find_class(self, module: str, name: str) -> Global:
        """pickle's find_class. At protocol < 3 it maps Python 2 names first (with the protocol of the unpickler that
        owns find_class, which for joblib's object arrays is the outer one): both spellings must be allow-listed."""
        self.effects += 1
        raw = (module, name)
        mapped = raw
        if raw in _compat_pickle.NAME_MAPPING:
            mapped = _compat_pickle.NAME_MAPPING[raw]
        elif module in _compat_pickle.IMPORT_MAPPING:
            mapped = (_compat_pickle.IMPORT_MAPPING[module], name)
        for pair in dict.fromkeys((raw, mapped)):
            self.walk.imports.add(pair)
            if not is_allowed(*pair):
                self.walk.flag(f"{pair[0]}.{pair[1]}")
        return Global(*(mapped if self.proto < 3 else raw))

    def find_class_named(self, module_line: tuple[bytes, int], name_line: tuple[bytes, int], encoding: str) -> Global:
        """GLOBAL and INST: two text lines, each without its last byte, decoded before anything is imported."""
        names = []
        for line, total in (module_line, name_line):
            if total > len(line):
                self.effects += 1
                self.walk.flag(f"cannot be shown safe: an import whose name is longer than {LINE_KEEP} bytes")
                return Global("?", "?")
            try:
                names.append(line[:-1].decode(encoding))
            except UnicodeDecodeError:
                raise Rejected(f"import names must be {encoding}") from None
        return self.find_class(*names)

    def call(self, func, args, *, how: str) -> object:
        """The unpickler calls `func` (REDUCE, OBJ, INST) or `func.__new__` (NEWOBJ, NEWOBJ_EX)."""
        self.effects += 1
        if isinstance(func, Global):
            result = Obj(cls=func, args=args)
            if func.pair == RECONSTRUCTOR and isinstance(args, tuple) and args and isinstance(args[0], Global):
                result = Obj(cls=args[0])  # copyreg._reconstructor(cls, base, state) builds a cls
            elif func.pair == NUMPY_ARRAY_WRAPPER and how == "call" and isinstance(args, tuple):
                result.attrs = {"numpy_array_alignment_bytes": JOBLIB_DEFAULT_ALIGNMENT, "allow_mmap": False}
                result.attrs.update(zip(WRAPPER_FIELDS, args))
            return result
        if _is_plain(func):
            raise Rejected(f"{how}: {type(func).__name__} object is not callable")
        self.walk.flag("cannot be shown safe: calls an object built while unpickling, not an allow-listed callable")
        return Obj()

    def build(self) -> None:
        state = self.pop()
        inst = self.top()
        if isinstance(inst, Global):
            self.walk.flag(
                f"cannot be shown safe: BUILD on the imported object {inst.module}.{inst.name} itself "
                "(would call its __setstate__ or set its attributes)"
            )
            return
        if not isinstance(inst, Obj) or inst is UNKNOWN:
            return
        inst.built = True
        inst.state = state
        if inst.cls is not None and inst.cls.pair == NUMPY_ARRAY_WRAPPER:
            self._wrapper_state(inst, state)
            self.walk.wrappers += 1
            self.wrapper_seen = True
            if self.joblib:
                self.stack[-1] = self._read_joblib_array(inst)

    def _wrapper_state(self, inst: Obj, state) -> None:
        """pickle.py load_build on an object without __setstate__: __dict__ update, then setattr of slot state."""
        slotstate = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slotstate = state
        for part in (state, slotstate):
            if part is None or part is False or (isinstance(part, (int, float, str, bytes, tuple)) and not part):
                continue
            if isinstance(part, Dict) and part.items is not None:
                inst.attrs.update(part.items)
            elif _is_plain(part) and not isinstance(part, (Dict, Opaque)):
                raise Rejected(f"{type(part).__name__} state has no items()")
            elif self.joblib:
                raise Undecidable("the state of a joblib NumpyArrayWrapper cannot be worked out")

    def _read_joblib_array(self, wrapper: Obj) -> Obj:
        """What NumpyArrayWrapper.read does to the file in joblib.load: a nested pickle for object arrays, else an
        optional padding (length byte + bytes) and count * itemsize bytes of data, read from the raw file."""
        attrs = wrapper.attrs
        for needed in ("shape", "dtype"):
            if needed not in attrs:
                raise Rejected(f"NumpyArrayWrapper has no attribute {needed!r}")
        dtype = materialize_dtype(attrs["dtype"])
        count = _element_count(attrs["shape"])
        if dtype.hasobject:
            inner = Machine.__new__(Machine)
            inner.source, inner.reader, inner.joblib, inner.walk = self.source, Frames(self.source), True, self.walk
            inner.memo, inner.retained = {}, self.retained
            inner.wrapper_seen, inner.firsts, inner.legacy_storages = False, [], {}
            inner._reset()
            inner.load_one()  # a Rejected here ends joblib.load, as it ends the outer walk
            self.retained = inner.retained
            return Obj(cls=Global("numpy", "ndarray"))
        if attrs.get("numpy_array_alignment_bytes") is not None:
            padding = self.source.read(1)
            self.source.skip(int.from_bytes(padding, "little"))
        if count < 0:
            raise Rejected("negative dimensions are not allowed")
        size = count * dtype.itemsize
        if self.source.skip(size) < size:
            raise Rejected("EOF: reading array data")
        return Obj(cls=Global("numpy", "ndarray"))


STOP = object()


def _element_count(shape) -> int:
    """joblib's count: the product of the shape as numpy int64 (which wraps around on overflow)."""
    import numpy

    if isinstance(shape, List) and shape.items is not None:
        shape = tuple(shape.items)
    if not isinstance(shape, tuple) or not all(isinstance(x, int) for x in shape):
        raise Undecidable("the shape of a joblib array cannot be worked out")
    if not shape:
        return 1
    with numpy.errstate(over="ignore"):
        try:
            return int(numpy.multiply.reduce([numpy.int64(x) for x in shape]))
        except OverflowError:
            raise Rejected("array dimension does not fit in int64") from None


def materialize_dtype(value):
    """Build the numpy dtype a pickled `numpy.dtype(*args)` + BUILD(state) stands for, from plain data only."""
    import numpy

    if not (isinstance(value, Obj) and value.cls is not None and value.cls.pair == NUMPY_DTYPE and isinstance(value.args, tuple)):
        raise Undecidable("the dtype of a joblib array cannot be worked out")
    try:
        dtype = numpy.dtype(*_plain(value.args))
        if value.built:
            dtype.__setstate__(_plain(value.state))
    except Undecidable:
        raise
    except Exception as exc:  # the unpickler's own numpy.dtype call or __setstate__ fails the same way: the load stops
        raise Rejected(f"numpy.dtype: {exc}") from None
    return dtype


def _plain(value, depth: int = 0):
    """Our value model back to Python plain data (and nested dtypes), refusing anything else."""
    if depth > 32:
        raise Undecidable("the dtype of a joblib array is nested too deep")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, tuple):
        return tuple(_plain(v, depth + 1) for v in value)
    if isinstance(value, List) and value.items is not None:
        return [_plain(v, depth + 1) for v in value.items]
    if isinstance(value, Dict) and value.items is not None:
        return {k: _plain(v, depth + 1) for k, v in value.items.items()}
    if isinstance(value, Obj) and value.cls is not None and value.cls.pair == NUMPY_DTYPE:
        return materialize_dtype(value)
    raise Undecidable("the dtype of a joblib array cannot be worked out")


# Opcode handlers, one per pickle.py load_* function, keyed by opcode byte.

DISPATCH: dict[int, object] = {}


def op(code: bytes):
    def register(fn):
        DISPATCH[code[0]] = fn
        return fn

    return register


@op(b"\x80")
def load_proto(m: Machine):
    proto = m.read_exact(1)[0]
    if proto > HIGHEST_PROTOCOL:
        raise Rejected(f"unsupported pickle protocol: {proto}")
    m.proto = proto


@op(b"\x95")
def load_frame(m: Machine):
    size = m.u("<Q")
    if size > sys.maxsize:
        raise Rejected("frame size > sys.maxsize")
    if m.joblib:
        m.reader.load_frame(size)
    # C's unpickler treats frames as transparent: the bytes that follow are read as opcodes either way.


@op(b"P")
def load_persid(m: Machine):
    line, _ = m.read_line()
    try:
        line[:-1].decode("ascii")
    except UnicodeDecodeError:
        raise Rejected("persistent IDs in protocol 0 must be ASCII strings") from None
    m.push(UNKNOWN)  # the loader's persistent_load decides (plain pickle refuses; torch returns a storage)


@op(b"Q")
def load_binpersid(m: Machine):
    m.push(m.persistent_load(m.pop()))


@op(b"N")
def load_none(m: Machine):
    m.push(None)


@op(b"\x89")
def load_false(m: Machine):
    m.push(False)


@op(b"\x88")
def load_true(m: Machine):
    m.push(True)


@op(b"I")
def load_int(m: Machine):
    m.push(parse_int_line(*m.read_line()))


@op(b"J")
def load_binint(m: Machine):
    m.push(m.u("<i"))


@op(b"K")
def load_binint1(m: Machine):
    m.push(m.read_exact(1)[0])


@op(b"M")
def load_binint2(m: Machine):
    m.push(m.u("<H"))


@op(b"L")
def load_long(m: Machine):
    m.push(parse_long_line(*m.read_line()))


def _long_bytes(m: Machine, n: int):
    if n <= 64:
        return int.from_bytes(m.read_exact(n), "little", signed=True)
    if m.reader.skip(n) < n:
        raise Rejected("pickle data was truncated")
    return Opaque("int")


@op(b"\x8a")
def load_long1(m: Machine):
    m.push(_long_bytes(m, m.read_exact(1)[0]))


@op(b"\x8b")
def load_long4(m: Machine):
    n = m.u("<i")
    if n < 0:
        raise Rejected("LONG pickle has negative byte count")
    m.push(_long_bytes(m, n))


@op(b"F")
def load_float(m: Machine):
    m.push(parse_float_line(*m.read_line()))


@op(b"G")
def load_binfloat(m: Machine):
    m.push(m.u(">d"))


def _py2_string(m: Machine, data) -> object:
    # Decoded with the loader's `encoding` (ASCII by default, latin1 or bytes on request): kept as str when ASCII.
    if isinstance(data, bytes):
        return data.decode("ascii") if data.isascii() and m.keep(len(data)) else Opaque("str")
    return Opaque("str")


@op(b"S")
def load_string(m: Machine):
    line, total = m.read_line()
    if total > len(line):
        m.push(Opaque("str"))  # too long to check its quoting and escapes: taken as accepted
        return
    data = line[:-1]
    if not (len(data) >= 2 and data[0] == data[-1] and data[0] in b"\"'"):
        raise Rejected("the STRING opcode argument must be quoted")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "invalid escape sequence": accepted, as pickle does
            decoded = codecs.escape_decode(data[1:-1])[0]
    except ValueError as exc:
        raise Rejected(f"STRING: {exc}") from None
    m.push(_py2_string(m, decoded if len(decoded) <= NAME_KEEP else None))


@op(b"T")
def load_binstring(m: Machine):
    n = m.u("<i")
    if n < 0:
        raise Rejected("BINSTRING pickle has negative byte count")
    m.push(_py2_string(m, m.read_text(n, utf8=False)))


@op(b"U")
def load_short_binstring(m: Machine):
    m.push(_py2_string(m, m.read_text(m.u("<B"), utf8=False)))


def _sized(code: bytes, length: str, *, utf8: bool):
    """BINBYTES, SHORT_BINBYTES, BINBYTES8 (bytes) and BINUNICODE, SHORT_BINUNICODE, BINUNICODE8 (UTF-8, surrogatepass)."""

    def load_sized(m: Machine):
        m.push(m.read_text(m.u(length), utf8=utf8))

    DISPATCH[code[0]] = load_sized


for _code, _length, _utf8 in (
    (b"B", "<I", False), (b"C", "<B", False), (b"\x8e", "<Q", False), (b"X", "<I", True), (b"\x8c", "<B", True), (b"\x8d", "<Q", True)
):
    _sized(_code, _length, utf8=_utf8)


@op(b"\x96")
def load_bytearray8(m: Machine):
    n = m.u("<Q")
    if n > sys.maxsize:
        raise Rejected("BYTEARRAY8 exceeds system's maximum size")
    m.read_text(n, utf8=False)
    m.push(Opaque("bytearray"))


@op(b"V")
def load_unicode(m: Machine):
    line, total = m.read_line()
    if total > len(line):
        m.push(Opaque("str"))
        return
    try:
        text = str(line[:-1], "raw-unicode-escape")
    except UnicodeDecodeError as exc:
        raise Rejected(f"UNICODE: {exc.reason}") from None
    m.push(_kept_str(text) if m.keep(len(text)) else Opaque("str"))


@op(b"\x97")
def load_next_buffer(m: Machine):
    m.push(UNKNOWN)  # an out-of-band buffer, when the loader passes `buffers=` (plain loads refuse)


@op(b"\x98")
def load_readonly_buffer(m: Machine):
    m.top()


def _tuple(m: Machine, items: list):
    return tuple(items) if len(items) <= CONTAINER_KEEP and m.keep(len(items)) else Opaque("tuple")


@op(b"t")
def load_tuple(m: Machine):
    m.push(_tuple(m, m.pop_mark()))


@op(b")")
def load_empty_tuple(m: Machine):
    m.push(())


@op(b"\x85")
def load_tuple1(m: Machine):
    m.push((m.pop(),))


@op(b"\x86")
def load_tuple2(m: Machine):
    if len(m.stack) < 2:
        raise Rejected("unpickling stack underflow")
    b, a = m.pop(), m.pop()
    m.push((a, b))


@op(b"\x87")
def load_tuple3(m: Machine):
    if len(m.stack) < 3:
        raise Rejected("unpickling stack underflow")
    c, b, a = m.pop(), m.pop(), m.pop()
    m.push((a, b, c))


@op(b"]")
def load_empty_list(m: Machine):
    m.push(List())


@op(b"}")
def load_empty_dictionary(m: Machine):
    m.push(Dict())


@op(b"\x8f")
def load_empty_set(m: Machine):
    m.push(SetOf())


@op(b"\x91")
def load_frozenset(m: Machine):
    m.pop_mark()
    m.push(SetOf())


@op(b"l")
def load_list(m: Machine):
    items = m.pop_mark()
    m.push(List(items if len(items) <= m.container_keep and m.keep(len(items)) else None))


def _set_items(m: Machine, target, pairs: list) -> None:
    if isinstance(target, Global):
        m.walk.flag(f"cannot be shown safe: SETITEM on the imported object {target.module}.{target.name}")
    elif isinstance(target, Dict) and target.items is not None:
        if len(target.items) + len(pairs) // 2 > CONTAINER_KEEP or not m.keep(len(pairs)):
            target.items = None
            return
        for i in range(0, len(pairs) - 1, 2):
            if isinstance(pairs[i], str):
                target.items[pairs[i]] = pairs[i + 1]


@op(b"d")
def load_dict(m: Machine):
    items = m.pop_mark()
    if len(items) % 2:
        raise Rejected("odd number of items for DICT")
    d = Dict()
    _set_items(m, d, items)
    m.push(d)


@op(b"i")
def load_inst(m: Machine):
    # pickle.py reads both lines and imports before it looks for the MARK (the C unpickler looks first).
    klass = m.find_class_named(m.read_line(), m.read_line(), "ascii")
    args = m.pop_mark()
    m.push(m.call(klass, _tuple(m, args), how="call"))


@op(b"o")
def load_obj(m: Machine):
    args = m.pop_mark()
    if not args:
        raise Rejected("unpickling stack underflow")
    cls = args.pop(0)
    m.push(m.call(cls, _tuple(m, args), how="call"))


@op(b"\x81")
def load_newobj(m: Machine):
    args = m.pop()
    cls = m.pop()
    m.push(m.call(cls, args, how="__new__"))


@op(b"\x92")
def load_newobj_ex(m: Machine):
    m.pop()  # kwargs
    args = m.pop()
    cls = m.pop()
    m.push(m.call(cls, args, how="__new__"))


@op(b"c")
def load_global(m: Machine):
    m.push(m.find_class_named(m.read_line(), m.read_line(), "utf-8"))


@op(b"\x93")
def load_stack_global(m: Machine):
    name = m.pop()
    module = m.pop()
    if isinstance(name, str) and isinstance(module, str):
        m.push(m.find_class(module, name))
        return
    known = (type(None), bool, int, float, bytes, tuple, List, Dict, SetOf, Global)
    if isinstance(name, known) or isinstance(module, known) or any(isinstance(v, Opaque) and v.kind != "str" for v in (name, module)):
        raise Rejected("STACK_GLOBAL requires str")
    m.effects += 1
    m.walk.flag("<an import whose name is computed at load time>")
    m.push(UNKNOWN)


def _extension(m: Machine, code: int):
    if code <= 0:
        raise Rejected("EXT specifies code <= 0")
    m.pending_extension = f"cannot be shown safe: copyreg extension code {code} imports whatever the loading process registered"
    m.push(UNKNOWN)


@op(b"\x82")
def load_ext1(m: Machine):
    _extension(m, m.read_exact(1)[0])


@op(b"\x83")
def load_ext2(m: Machine):
    _extension(m, m.u("<H"))


@op(b"\x84")
def load_ext4(m: Machine):
    _extension(m, m.u("<i"))


@op(b"R")
def load_reduce(m: Machine):
    args = m.pop()
    func = m.top()
    m.stack[-1] = m.call(func, args, how="call")


@op(b"0")
def load_pop(m: Machine):
    if m.stack:
        m.pop()
    else:
        m.pop_mark()


@op(b"1")
def load_pop_mark(m: Machine):
    m.pop_mark()


@op(b"2")
def load_dup(m: Machine):
    m.push(m.top())


def _get(m: Machine, index: int):
    if index not in m.memo:
        raise Rejected(f"Memo value not found at index {index}")
    m.push(m.memo[index])


@op(b"g")
def load_get(m: Machine):
    line = m.read_line()
    if not m.memo:  # nothing memoized: both unpicklers fail whatever the index, however long its line
        raise Rejected("Memo value not found")
    _get(m, parse_memo_index(*line))


@op(b"h")
def load_binget(m: Machine):
    _get(m, m.read_exact(1)[0])


@op(b"j")
def load_long_binget(m: Machine):
    _get(m, m.u("<I"))


def _put(m: Machine, index: int):
    if index < 0:
        raise Rejected("negative PUT argument")
    value = m.top()
    if index not in m.memo and len(m.memo) >= MAX_MEMO:
        raise Undecidable(f"the memo would hold more than {MAX_MEMO} entries")
    m.memo[index] = value


@op(b"p")
def load_put(m: Machine):
    line = m.read_line()
    # On an empty stack both unpicklers fail whatever the index says (C checks the stack before parsing the line, the
    # Python one indexes the empty stack after): decided here, however long the line (a safetensors header length
    # whose low byte is 0x70 starts with a "PUT" followed by kilobytes of JSON).
    m.top()
    _put(m, parse_memo_index(*line))


@op(b"q")
def load_binput(m: Machine):
    _put(m, m.read_exact(1)[0])


@op(b"r")
def load_long_binput(m: Machine):
    _put(m, m.u("<I"))


@op(b"\x94")
def load_memoize(m: Machine):
    _put(m, len(m.memo))


def _append(m: Machine, target, items: list) -> None:
    if isinstance(target, Global):
        m.walk.flag(f"cannot be shown safe: APPEND on the imported object {target.module}.{target.name}")
    elif isinstance(target, List) and target.items is not None:
        if len(target.items) + len(items) > m.container_keep or not m.keep(len(items)):
            target.items = None
        else:
            target.items.extend(items)


@op(b"a")
def load_append(m: Machine):
    value = m.pop()
    _append(m, m.top(), [value])


@op(b"e")
def load_appends(m: Machine):
    items = m.pop_mark()
    _append(m, m.top(), items)


@op(b"s")
def load_setitem(m: Machine):
    value = m.pop()
    key = m.pop()
    _set_items(m, m.top(), [key, value])


@op(b"u")
def load_setitems(m: Machine):
    items = m.pop_mark()
    target = m.top()
    if len(items) % 2:
        raise Rejected("odd number of items for SETITEMS")
    _set_items(m, target, items)


@op(b"\x90")
def load_additems(m: Machine):
    m.pop_mark()
    target = m.top()
    if isinstance(target, Global):
        m.walk.flag(f"cannot be shown safe: ADDITEMS on the imported object {target.module}.{target.name}")


@op(b"b")
def load_build(m: Machine):
    m.build()


@op(b"(")
def load_mark(m: Machine):
    m.metastack.append(m.stack)
    m.stack = []


@op(b".")
def load_stop(m: Machine):
    m.result = m.pop()
    return STOP
