"""Find what a pickle would import, by walking its opcodes with `pickletools.genops`: nothing is ever executed.

Every imported global must be on an allow-list; an import we cannot resolve statically counts as unsafe.
Denylist scanners (picklescan, modelscan) have a history of bypasses through globals nobody listed; an
allow-list fails closed instead.
"""

import io
import pickletools
import zipfile

from django.conf import settings

from .base import CheckContext, Outcome

name = "unsafe_serialization"
version = "1.0"

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".bin", ".pt", ".pth", ".ckpt")
MAX_PICKLES_PER_STREAM = 5  # legacy torch.load unpickles five objects, then reads raw storage bytes
MAX_MEMBER_BYTES = 1024 * 1024 * 1024

TORCH_STORAGES = {f"{kind}Storage" for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool", "ComplexFloat", "ComplexDouble", "Untyped")}
TORCH_DTYPES = {"float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool", "complex64", "complex128", "float", "double", "half", "long", "int"}
SAFE_GLOBALS: dict[str, set[str]] = {
    "collections": {"OrderedDict", "defaultdict", "Counter", "deque"},
    "builtins": {"set", "frozenset", "slice", "range", "complex", "bytearray", "bytes", "dict", "list", "tuple", "int", "float", "bool", "str", "object"},
    "__builtin__": {"set", "frozenset", "slice", "complex", "bytearray", "dict", "list", "tuple", "int", "float", "bool", "str", "object"},
    "copy_reg": {"_reconstructor"},
    "copyreg": {"_reconstructor"},
    "_codecs": {"encode"},
    "datetime": {"datetime", "date", "time", "timedelta", "timezone"},
    "decimal": {"Decimal"},
    "fractions": {"Fraction"},
    "uuid": {"UUID"},
    "numpy": {"ndarray", "dtype", "float64", "float32", "int64", "int32", "bool_", "uint8"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
    "numpy.dtypes": {"Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType", "Int16DType", "Int8DType", "UInt8DType", "BoolDType", "StrDType", "ObjectDType"},
    "numpy.random._pickle": {"__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor"},
    "numpy.random.mtrand": {"RandomState"},
    "joblib.numpy_pickle": {"NumpyArrayWrapper"},
    "torch": {*TORCH_STORAGES, *TORCH_DTYPES, "Size", "device"},
    "torch._utils": {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter", "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor", "_rebuild_meta_tensor_no_storage", "_rebuild_wrapper_subclass", "_rebuild_device_tensor_from_numpy"},
    "torch.nn.parameter": {"Parameter"},
    "torch._tensor": {"_rebuild_from_type_v2"},
}


def _allowed(module: str, attribute: str) -> bool:
    if attribute in SAFE_GLOBALS.get(module, ()):
        return True
    # Estimator classes of these libraries are plain data holders; nothing else of theirs is imported by their pickles.
    return any(module == prefix or module.startswith(prefix + ".") for prefix in settings.VALIDATION_PICKLE_ALLOWED_MODULES) and attribute[:1].isupper()


class NotAPickle(ValueError):
    pass


class PickleScan:
    """Accumulates the imports of the pickles in a stream, including those seen before a parse error:
    an unpickler would already have executed them by the time it failed."""

    def __init__(self) -> None:
        self.imports: set[tuple[str, str]] = set()
        self.unsafe: set[str] = set()

    def scan_stream(self, stream) -> None:
        """Scan the pickles at the start of a stream, as many as an unpickler would load (five for legacy torch).

        Raises NotAPickle when the stream fails to parse before any import: such bytes cannot run code when
        unpickled. Raises ValueError when it fails to parse after an import: its safety cannot be shown.
        """
        for index in range(MAX_PICKLES_PER_STREAM):
            if not stream.read(1):
                return
            stream.seek(-1, io.SEEK_CUR)
            seen_before = len(self.imports) + len(self.unsafe)
            try:
                self._scan_one(stream)
            except ValueError as exc:
                if len(self.imports) + len(self.unsafe) == seen_before:
                    if index == 0:
                        raise NotAPickle(str(exc)) from exc
                    return  # raw data after the pickles, as in legacy torch files
                raise

    def _scan_one(self, stream) -> None:
        memo: dict = {}
        recent: list = []  # values pushed lately; strings kept, everything else None

        def record(module: str, attribute: str) -> None:
            self.imports.add((module, attribute))
            if not _allowed(module, attribute):
                self.unsafe.add(f"{module}.{attribute}")

        for opcode, arg, _ in pickletools.genops(stream):
            op = opcode.name
            if op in ("GLOBAL", "INST"):
                module, _, attribute = str(arg).partition(" ")
                record(module, attribute)
                recent.append(None)
            elif op == "STACK_GLOBAL":
                if len(recent) >= 2 and isinstance(recent[-2], str) and isinstance(recent[-1], str):
                    record(recent[-2], recent[-1])
                else:
                    self.unsafe.add("<an import whose name is computed at load time>")
                recent.append(None)
            elif op in ("EXT1", "EXT2", "EXT4"):
                self.unsafe.add(f"<copyreg extension code {arg}>")
            elif op in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"):
                recent.append(arg if isinstance(arg, str) else None)
            elif op in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = recent[-1] if recent else None
            elif op == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif op in ("BINGET", "LONG_BINGET", "GET"):
                recent.append(memo.get(arg))
            elif op not in ("PROTO", "FRAME", "STOP"):
                recent.append(None)
            if len(recent) > 64:
                del recent[:32]


def scan_file(handle) -> dict:
    """Scan one artifact: a pickle stream, or a zip archive (PyTorch) whose *.pkl members are scanned.

    Raises ValueError when the file cannot be parsed and nothing unsafe was found before the error.
    """
    scan = PickleScan()
    members: list[str] = []
    kind = "pickle"
    try:
        if handle.read(4) == b"PK\x03\x04":
            kind = "zip"
            handle.seek(0)
            with zipfile.ZipFile(handle) as archive:
                for member in archive.infolist():
                    if member.filename.endswith(".pkl"):
                        if member.file_size > MAX_MEMBER_BYTES:
                            raise ValueError(f"{member.filename} is too large to scan")
                        members.append(member.filename)
                        with archive.open(member) as inner:
                            scan.scan_stream(io.BytesIO(inner.read()))
        else:
            handle.seek(0)
            scan.scan_stream(handle)
    except NotAPickle:
        if kind == "pickle":
            return {"format": "not a pickle", "imports": [], "unsafe": []}
        raise
    except ValueError:
        if not scan.unsafe:
            raise
    return {
        "format": kind,
        "members": members,
        "imports": sorted(f"{m}.{a}" for m, a in scan.imports),
        "unsafe": sorted(scan.unsafe),
    }


def run(context: CheckContext) -> Outcome:
    findings: dict[str, dict] = {}
    unsafe_files: dict[str, list[str]] = {}
    unreadable: dict[str, str] = {}
    for artifact in context.by_suffix(*PICKLE_SUFFIXES):
        try:
            with context.open(artifact) as handle:
                result = scan_file(handle)
        except (ValueError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
            unreadable[artifact.path] = f"could not be parsed as a pickle ({exc}); its safety cannot be shown"
            continue
        findings[artifact.path] = result
        if result["format"] == "not a pickle":
            continue
        if result["unsafe"]:
            unsafe_files[artifact.path] = result["unsafe"]
    details = {"files": findings, "unsafe": unsafe_files, "unreadable": unreadable}
    if unsafe_files:
        listed = "; ".join(f"{path}: {', '.join(globals_)}" for path, globals_ in unsafe_files.items())
        return Outcome("fail", f"unsafe imports when unpickled: {listed}"[:480], details)
    if unreadable:
        return Outcome("fail", "; ".join(f"{p} {m}" for p, m in unreadable.items())[:480], details)
    pickles = [path for path, result in findings.items() if result["format"] != "not a pickle"]
    if not pickles:
        return Outcome("skip", "no pickle-based files", details)
    return Outcome("pass", f"{len(pickles)} pickle-based file(s) import only allow-listed globals", details)
