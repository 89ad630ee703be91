"""Find every place a loader could unpickle from, by content: the artifact itself, joblib's compressed streams
(zlib, gzip, bz2, lzma, xz and the old "ZF" format, detected by the prefixes `joblib.numpy_pickle_utils._detect_compressor`
uses), zip archives (PyTorch's too; found the way `zipfile` finds them, by the end-of-central-directory record),
tar archives and the data section of `.npy` files (where `numpy.load(allow_pickle=True)` unpickles object arrays).
Containers nest up to a depth cap. In a zip laid out as `torch.save` writes it (`<name>/data.pkl`), the members
`<name>/data/<key>` that data.pkl's storage ids name are raw tensor bytes `torch.load` reads as data: they are not
walked as pickles (random weights read as opcodes would look like imports now and then).

Everything is read as a stream: decompressors are called with a bounded output size, zip members are read in chunks,
and a tree of openers lets each walk start over without keeping data in memory. Totals and expansion ratios are
capped; passing a cap is reported as "cannot be shown safe".
"""

from __future__ import annotations

import ast
import bz2
import io
import lzma
import shutil
import struct
import tarfile
import tempfile
import zipfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from .pickle_machine import Machine, Walk

READ_SIZE = 64 * 1024
OUT_SIZE = 1024 * 1024
RATIO_GRACE = 16 * 1024 * 1024  # a stream may expand this much before its ratio is judged
MAX_MEMBERS = 100_000
JOBLIB_ZF_HEADER = 2 + 19  # b"ZF" + the length, hex, left-justified in 19 characters


class CapExceeded(Exception):
    pass


@dataclass(frozen=True)
class Limits:
    max_bytes: int  # bytes produced by decompression and archive members, over the whole artifact
    max_ratio: float  # output / input of one compressed stream or zip member
    max_depth: int  # containers inside containers


@dataclass
class Report:
    containers: list[str] = field(default_factory=list)  # where a container was opened, e.g. "gzip", "archive.zip > w.pkl"
    pickles: list[str] = field(default_factory=list)  # where a pickle was found ("" is the artifact itself)
    imports: set = field(default_factory=set)
    unsafe: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def flag(self, where: str, message: str) -> None:
        text = f"{where}: {message}" if where else message
        if text not in self.unsafe:
            self.unsafe.append(text)


class Budget:
    def __init__(self, limits: Limits, on_progress: Callable[[int], None] | None):
        self.limits = limits
        self.used = 0
        self.on_progress = on_progress

    def spend(self, n: int) -> None:
        self.used += n
        if self.used > self.limits.max_bytes:
            raise CapExceeded(f"more than {self.limits.max_bytes} bytes decompressed from one artifact (VALIDATION_PICKLE_MAX_BYTES)")
        if self.on_progress:
            self.on_progress(n)

    def check_ratio(self, produced: int, consumed: int, what: str) -> None:
        if produced > RATIO_GRACE and produced > self.limits.max_ratio * max(consumed, 1):
            raise CapExceeded(f"{what} expands more than {self.limits.max_ratio:g} times (VALIDATION_PICKLE_MAX_RATIO)")


ZLIB = type(zlib.decompressobj())


class Inflating(io.RawIOBase):
    """A decompressed view of a stream, produced OUT_SIZE bytes at a time. A corrupt stream ends where it breaks,
    as the loader's read would raise there."""

    def __init__(self, raw, kind: str, budget: Budget):
        self.raw, self.kind, self.budget = raw, kind, budget
        self.decompressor = self._new()
        self.pending = b""  # compressed bytes not yet given to a decompressor
        self.left = b""  # decompressed bytes not yet returned
        self.done = False
        self.consumed = self.produced = 0
        self.error = ""

    def _new(self):
        if self.kind == "gzip":
            return zlib.decompressobj(31)
        if self.kind in ("zlib", "joblib ZF"):
            return zlib.decompressobj(15)
        if self.kind == "bz2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE if self.kind == "lzma" else lzma.FORMAT_XZ)

    def readable(self) -> bool:
        return True

    def _read_raw(self) -> bytes:
        data = self.raw.read(READ_SIZE)
        self.consumed += len(data)
        return data

    def _more(self) -> bytes:
        while not self.done:
            d = self.decompressor
            if d.eof:
                rest = d.unused_data
                # gzip, bz2 and xz readers go on with a following stream; joblib's zlib and lzma-alone readers do not
                if self.kind in ("gzip", "bz2", "xz") and (rest or (rest := self._read_raw())):
                    self.decompressor, self.pending = self._new(), rest
                    continue
                self.done = True
                break
            if self.pending:
                data, self.pending = self.pending, b""
            elif isinstance(d, ZLIB) and d.unconsumed_tail:
                data = d.unconsumed_tail
            elif not isinstance(d, ZLIB) and not d.needs_input:
                data = b""
            else:
                data = self._read_raw()
                if not data:
                    self.done, self.error = True, f"the {self.kind} stream ends early"
                    break
            try:
                out = d.decompress(data, OUT_SIZE)
            except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
                self.done, self.error = True, f"corrupt {self.kind} data ({exc})"
                break
            if out:
                self.produced += len(out)
                self.budget.spend(len(out))
                self.budget.check_ratio(self.produced, self.consumed, f"a {self.kind} stream")
                return out
        return b""

    def read(self, size: int = -1) -> bytes:
        if not self.left:
            self.left = self._more()
        if size is None or size < 0:
            size = len(self.left)
        data, self.left = self.left[:size], self.left[size:]
        return data

    def close(self) -> None:
        self.raw.close()
        super().close()


class Counted(io.RawIOBase):
    """A zip or tar member's stream, counted against the budget."""

    def __init__(self, raw, budget: Budget):
        self.raw, self.budget = raw, budget

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.raw.read(size if size and size > 0 else READ_SIZE)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, lzma.LZMAError, NotImplementedError):
            return b""  # a loader reading the member fails here too
        self.budget.spend(len(data))
        return data

    def close(self) -> None:
        self.raw.close()
        super().close()


def _compressor(head: bytes) -> str | None:
    """joblib's _detect_compressor, in its order (ZF first, then the registered compressors)."""
    if head.startswith(b"ZF"):
        return "joblib ZF"
    for kind, prefix in (("zlib", b"\x78"), ("gzip", b"\x1f\x8b"), ("bz2", b"BZ"), ("lzma", b"\x5d\x00"), ("xz", b"\xfd\x37\x7a\x58\x5a")):
        if head.startswith(prefix):
            return kind
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    return None


def _npy_data_offset(head: bytes) -> int | None:
    """Where `numpy.load` would start unpickling an .npy file's data, or None when it would not unpickle it.

    numpy unpickles the data only for dtypes that hold objects; other arrays are raw bytes, which can read as
    opcodes by chance. The dtype is trusted only when the header parses in full within `head` as numpy parses it
    (a literal dict) and no type in it can name objects; anything else is walked.
    """
    if not head.startswith(b"\x93NUMPY") or len(head) < 12:
        return None
    if head[6] == 1:
        start, length = 10, struct.unpack("<H", head[8:10])[0]
    elif head[6] in (2, 3):
        start, length = 12, struct.unpack("<I", head[8:12])[0]
    else:
        return None
    if _npy_holds_no_objects(head[start:start + length]) if start + length <= len(head) else False:
        return None
    return start + length


def _npy_holds_no_objects(header: bytes) -> bool:
    try:
        fields = ast.literal_eval(header.decode("latin1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return False
    if not isinstance(fields, dict) or "descr" not in fields:
        return False

    def type_codes(descr) -> list:
        if isinstance(descr, str):
            return [descr]
        if isinstance(descr, list):  # structured: (name, type) or (name, type, shape) per field
            return [code for field in descr if isinstance(field, tuple) and len(field) >= 2 for code in type_codes(field[1])]
        return [None]

    codes = type_codes(fields["descr"])
    return bool(codes) and all(isinstance(code, str) and "O" not in code and "object" not in code.lower() for code in codes)


def _looks_like_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


class Scanner:
    """Scan one artifact: every stream a loader could unpickle from, each walked as pickle.load and joblib.load read it."""

    def __init__(self, limits: Limits, on_progress: Callable[[int], None] | None = None):
        self.limits = limits
        self.budget = Budget(limits, on_progress)
        self.on_progress = on_progress
        self.report = Report()
        self.stack = ExitStack()

    def scan(self, opener: Callable[[], io.IOBase], *, seekable: bool = True) -> Report:
        with self.stack:
            try:
                self._node("", opener, depth=0, seekable=seekable)
            except CapExceeded as exc:
                self.report.flag("", f"cannot be shown safe: {exc}")
        return self.report

    def _walk(self, where: str, opener, *, joblib: bool) -> Walk:
        with opener() as stream:
            return Machine(stream, joblib=joblib, on_progress=self.on_progress).run()

    def _node(self, where: str, opener, *, depth: int, seekable: bool) -> set[str]:
        """Scan one stream and the containers in it; returns the keys of the torch storages its pickles name."""
        walk = self._walk(where, opener, joblib=False)
        walks = [walk]
        if walk.wrappers:
            walks.append(self._walk(where, opener, joblib=True))  # joblib.load reads the arrays between opcodes
        for w in walks:
            self.report.imports |= w.imports
            for message in w.unsafe:
                self.report.flag(where, message)
        if walk.pickles or walk.imports or walk.unsafe:
            self.report.pickles.append(where)
        with opener() as stream:
            head = stream.read(512)
        self._containers(where, opener, head, depth=depth, seekable=seekable)
        return walk.storage_keys

    def _child(self, where: str, name: str, opener, *, depth: int, seekable: bool) -> set[str]:
        label = f"{where} > {name}" if where else name
        self.report.containers.append(label)
        return self._node(label, opener, depth=depth, seekable=seekable)

    def _too_deep(self, where: str, depth: int) -> bool:
        if depth < self.limits.max_depth:
            return False
        self.report.flag(where, f"cannot be shown safe: containers nested deeper than {self.limits.max_depth} (VALIDATION_PICKLE_MAX_DEPTH)")
        return True

    def _containers(self, where: str, opener, head: bytes, *, depth: int, seekable: bool) -> None:
        kind = _compressor(head)
        if kind == "lz4":
            self.report.flag(where, "cannot be shown safe: lz4-compressed data (joblib reads it when lz4 is installed; the scanner cannot)")
        elif kind and self._inflates(opener, kind) and not self._too_deep(where, depth):
            self._child(where, kind, lambda: self._inflating(opener, kind), depth=depth + 1, seekable=False)
        offset = _npy_data_offset(head)
        if offset is not None and not self._too_deep(where, depth):
            self._child(where, "npy data", lambda: self._skipping(opener, offset), depth=depth + 1, seekable=False)
        if seekable:
            self._zip_or_tar(where, opener, head, depth=depth)
        elif head.startswith((b"PK\x03\x04", b"PK\x05\x06")) or _looks_like_tar(head):
            if not self._too_deep(where, depth):
                spooled = self._spool(opener)
                self._zip_or_tar(where, lambda: Borrowed(spooled), head, depth=depth)

    def _inflating(self, opener, kind: str, budget: Budget | None = None):
        raw = opener()
        if kind == "joblib ZF":
            raw.read(JOBLIB_ZF_HEADER)
            first = raw.read(1)  # joblib <= 0.8.4 wrote one more space
            raw = _Prefixed(b"" if first == b" " else first, raw)
        return Inflating(raw, kind, budget or self.budget)

    def _inflates(self, opener, kind: str) -> bool:
        """Whether the stream really is of that kind: joblib's one-byte zlib prefix matches plenty of other data."""
        with self._inflating(opener, kind, Budget(Limits(2**62, 2**62, 0), None)) as probe:
            return bool(probe.read(1))

    def _skipping(self, opener, offset: int):
        stream = opener()
        left = offset
        while left > 0 and (piece := stream.read(min(left, READ_SIZE))):
            left -= len(piece)
        return stream

    def _spool(self, opener):
        spooled = self.stack.enter_context(tempfile.TemporaryFile())
        with opener() as stream:
            shutil.copyfileobj(stream, spooled, READ_SIZE)
        spooled.seek(0)
        return spooled

    def _zip_or_tar(self, where: str, opener, head: bytes, *, depth: int) -> None:
        handle = self.stack.enter_context(opener())
        if zipfile.is_zipfile(handle):
            if not self._too_deep(where, depth):
                self._zip(where, handle, depth=depth)
        elif _looks_like_tar(head) and not self._too_deep(where, depth):
            handle.seek(0)
            self._tar(where, handle, depth=depth)

    def _zip(self, where: str, handle, *, depth: int) -> None:
        try:
            handle.seek(0)
            archive = self.stack.enter_context(zipfile.ZipFile(handle))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            self.report.flag(where, f"cannot be shown safe: a zip archive that cannot be read ({exc})")
            return
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise CapExceeded(f"a zip archive with more than {MAX_MEMBERS} members")
        # torch's zip reader takes the folder of the first entry as the archive's name and reads <name>/data.pkl
        prefix = members[0].filename.partition("/")[0] + "/" if members and "/" in members[0].filename else None
        torch_pickle = f"{prefix}data.pkl" if prefix else None
        raw_storages: set[str] = set()
        for info in sorted(members, key=lambda i: i.filename != torch_pickle):  # data.pkl first: it names the storages
            if info.is_dir() or info.filename in raw_storages:
                continue
            if info.file_size > RATIO_GRACE and info.file_size > self.limits.max_ratio * max(info.compress_size, 1):
                raise CapExceeded(f"zip member {info.filename} expands more than {self.limits.max_ratio:g} times (VALIDATION_PICKLE_MAX_RATIO)")
            try:
                archive.open(info).close()
            except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError, ValueError) as exc:
                self.report.flag(where, f"cannot be shown safe: zip member {info.filename} cannot be read ({exc})")
                continue
            keys = self._child(where, info.filename, lambda info=info: Counted(archive.open(info), self.budget), depth=depth + 1, seekable=False)
            if info.filename == torch_pickle:
                raw_storages |= {f"{prefix}data/{key}" for key in keys}

    def _tar(self, where: str, handle, *, depth: int) -> None:
        try:
            archive = self.stack.enter_context(tarfile.open(fileobj=handle, mode="r:"))
            count = 0
            for member in archive:
                count += 1
                if count > MAX_MEMBERS:
                    raise CapExceeded(f"a tar archive with more than {MAX_MEMBERS} members")
                if member.name == "storages":
                    self.report.flag(where, "cannot be shown safe: PyTorch's old tar checkpoint format (pickles between raw storages) is not modelled")
                if member.isfile():
                    self._child(where, member.name, lambda m=member: Counted(archive.extractfile(m), self.budget), depth=depth + 1, seekable=False)
        except tarfile.TarError as exc:
            self.report.flag(where, f"cannot be shown safe: a tar archive that cannot be read ({exc})")


class _Prefixed(io.RawIOBase):
    def __init__(self, prefix: bytes, raw):
        self.prefix, self.raw = prefix, raw

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.prefix:
            data, self.prefix = self.prefix, b""
            return data
        return self.raw.read(size)


class Borrowed(io.RawIOBase):
    """A file lent to one walk: rewound when lent, left open when the walk closes it, for the next walk."""

    def __init__(self, handle):
        self.handle = handle
        handle.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.handle.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()
