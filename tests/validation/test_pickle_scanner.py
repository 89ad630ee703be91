"""The unsafe-serialization scanner on its own: the malicious corpus is really dangerous and all flagged, the benign set
passes, the opcode reader agrees with the real unpicklers (C `pickle.loads` and the pure-Python one joblib uses),
and a zip bomb is flagged in bounded memory."""

import io
import json
import os
import pickle
import random
import resource
import struct
import subprocess
import sys
import zipfile
import zlib
from contextlib import contextmanager

import pytest

from apps.validation.checks.pickle_allowlist import ALLOWED
from apps.validation.checks.pickle_containers import Limits
from apps.validation.checks.pickle_machine import Machine
from apps.validation.checks.pickle_scan import scan_file

from . import pickle_corpus
from .pickle_corpus import ROOT, TORCH_MODULES, benign, common_estimators, legacy_torch_file, malicious, prove_dangerous, serialized
from .pickle_corpus import torch_benign, torch_file, zip_replacing


@pytest.fixture(scope="module")
def markers(tmp_path_factory):
    return tmp_path_factory.mktemp("markers")


@pytest.fixture(scope="module")
def corpus(markers):
    return malicious(markers)


def _scan(data: bytes) -> dict:
    return scan_file(io.BytesIO(data))


def test_the_corpus_covers_every_family_the_issue_names(corpus):
    families = {sample.family for sample in corpus}
    assert len(corpus) >= 30
    for needed in ("GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD with __setstate__", "EXT1 with copyreg", "EXT2 with copyreg",
                   "EXT4 with copyreg", "a compressed joblib file", "a harmless pickle followed by a malicious one", "nested containers"):
        assert needed in families
    assert {s.name.rsplit("/", 1)[1] for s in corpus} >= {"model.sav", "model.dill", "model.npy", "model.cloudpickle", "model"}


def test_every_corpus_file_really_runs_its_command_when_loaded(corpus, markers, tmp_path):
    created = prove_dangerous(corpus, tmp_path, markers)
    assert [name for name, made in created.items() if not made] == []


def test_every_corpus_file_is_flagged(corpus):
    missed = [sample.name for sample in corpus if not _scan(sample.data)["unsafe"]]
    assert missed == [], f"{len(corpus) - len(missed)}/{len(corpus)} flagged"


@pytest.mark.parametrize("sample", benign(), ids=lambda s: s.name)
def test_every_benign_file_passes(sample):
    result = _scan(sample.data)
    assert result["unsafe"] == []
    assert result["format"] != "not a pickle" or sample.loader in ("npy", "zip")  # a float .npy or .npz holds no pickle


def test_the_dotted_attribute_path_is_refused_as_one_exact_pair(corpus):
    dotted = next(s for s in corpus if s.name == "bypass/dotted-attribute.pkl")
    assert "sklearn.utils.Bunch.__init__.__builtins__.get" in _scan(dotted.data)["unsafe"]


def test_a_harmless_pickle_then_a_malicious_one_is_flagged_however_many_come_before(markers):
    payload = pickle.dumps(pickle_corpus.RunsCommand("true"), protocol=2)
    for count in (1, 5, 40):
        assert "posix.system" in _scan(pickle.dumps([1], protocol=2) * count + payload)["unsafe"]


def test_trailing_bytes_that_are_not_a_pickle_end_the_walk_without_a_finding():
    pickles = b"".join(pickle.dumps(x, protocol=2) for x in (7, 1001, {}, {"w": 1}, ["0"]))
    result = _scan(pickles + (16).to_bytes(8, "little") + b"\x00" * 64)
    assert result["unsafe"] == [] and result["format"] == "pickle"


def test_a_pickle_that_stops_after_importing_cannot_be_shown_safe():
    data = pickle.dumps({"a": pickle_corpus.fitted_models()["logistic"]}, protocol=4)
    assert _scan(data)["unsafe"] == []
    assert any("cannot be shown safe" in u for u in _scan(data[: len(data) // 2])["unsafe"])


def test_an_object_built_while_unpickling_may_not_be_called():
    # REDUCE whose callable is the result of an allowed call, not an import.
    crafted = b"\x80\x02c__builtin__\nset\n)R)R."
    assert any("calls an object built while unpickling" in u for u in _scan(crafted)["unsafe"])


def test_build_on_an_imported_class_itself_is_flagged():
    crafted = b"\x80\x02cnumpy\ndtype\n}b."
    assert any("BUILD on the imported object numpy.dtype" in u for u in _scan(crafted)["unsafe"])


# The grammar, against the real unpicklers. A recording find_class gives a harmless stand-in, so the real C and
# Python unpicklers can run any input and say what they would import.


class StandIn:
    def __init__(self, *args, **kwargs):
        pass

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __call__(self, *args, **kwargs):
        return StandIn()

    def __setstate__(self, state):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass

    def __setitem__(self, key, value):
        pass

    def add(self, item):
        pass


def _recording(base):
    class Recording(base):
        def __init__(self, data):
            super().__init__(io.BytesIO(data))
            self.imported = []

        def find_class(self, module, name):
            self.imported.append((module, name))
            return StandIn

    return Recording


C_UNPICKLER, PY_UNPICKLER = _recording(pickle.Unpickler), _recording(pickle._Unpickler)


def _real(cls, data: bytes) -> tuple[bool, list]:
    unpickler = cls(data)
    try:
        unpickler.load()
        return True, unpickler.imported
    except Exception:  # MemoryError included: the C memo grows to a mutated LONG_BINPUT index
        return False, unpickler.imported


@contextmanager
def memory_capped(extra: int = 1024**3):
    """Let this process map at most `extra` more bytes, so a real unpickler asked for gigabytes raises MemoryError."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    mapped = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _machine(data: bytes):
    return Machine(io.BytesIO(data)).run()


GRAMMAR = [
    b"I0x1\n.", b"I010\n.", b"I1_0\n.", b"I01\n.", b"I00\n.", b" I5\n.", b"I 5\n.", b"I5\x00junk\n.", b"I\n.", b"Ix\n.", b"I0x\n.",
    b"I99999999999999999999999\n.", b"I08\n.", b"I-0x1f\n.", b"L0x1L\n.", b"L12\n.", b"L12L\n.", b"L1_2L\n.", b"LL\n.",
    b"F1.5\n.", b"Finf\n.", b"F1_0\n.", b"F 1\n.", b"F1e999\n.", b"Fx\n.", b"S'a'\n.", b'S"a"\n.', b"S'a\"\n.", b"S'\\x4'\n.",
    b"Sa\n.", b"Vabc\n.", b"V\\u12\n.", b"N.", b"(N.", b"N0.", b"0.", b"(0N.", b"N2.", b"2.", b"\x80\x06N.", b"\x80\x05N.",
    b"Np0\n0g0\n.", b"Ng0\n.", b"Np-1\n.", b"Np 1\n0g1\n.", b"Np1\x00\n0g1\n.", b"(l.", b"(t.", b"(d.", b"(I1\nd.", b"}(I1\nu.",
    b"\x95\x02\x00\x00\x00\x00\x00\x00\x00N.", b"\x95\x01\x00\x00\x00\x00\x00\x00\x00N.", b"\x8c\x02\xff\xfe.", b"X\x01\x00\x00\x00\xed.",
    b"]N\x85e.", b")N\x86.", b"NN\x86.", b"\x8a\x01\x05.", b"\x8b\xff\xff\xff\xff.", b"T\xff\xff\xff\xff.", b"\x82\x00.",
    b"\x80\x04\x8c\x01a\x8c\x01b\x93.", b"K\x01K\x02\x93.", b"cos\nsystem\n.", b"(ios\nsystem\n.", b"ios\nsystem\n.", b"cos\nsys",
]


@pytest.mark.parametrize("data", GRAMMAR)
def test_the_reader_accepts_what_either_real_unpickler_accepts_and_imports_what_they_import(data):
    c_ok, c_imports = _real(C_UNPICKLER, data)
    py_ok, py_imports = _real(PY_UNPICKLER, data)
    walk = _machine(data)
    assert set(c_imports) | set(py_imports) <= walk.imports
    if c_ok or py_ok:
        assert walk.pickles == 1, walk.stopped
    else:
        assert walk.pickles == 0, "the reader accepts what both real unpicklers reject"


@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")  # the real unpicklers decoding mutated STRING opcodes
def test_mutated_pickles_never_import_more_under_the_real_unpicklers_than_the_reader_reports(corpus):
    rng = random.Random(8)
    seeds = [s.data for s in corpus if s.loader in ("pickle", "pickle-all", "ext")] + [s.data for s in benign()[:8]]
    tried = 0
    while tried < 1500:
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(data))
            action = rng.random()
            if action < 0.5:
                data[position] = rng.randrange(256)
            elif action < 0.75:
                data.insert(position, rng.randrange(256))
            else:
                del data[position]
        data = bytes(data)
        tried += 1
        walk = _machine(data)
        for cls in (C_UNPICKLER, PY_UNPICKLER):
            with memory_capped():
                _, imported = _real(cls, data)
            assert set(imported) <= walk.imports, data


# Containers and caps.


class _SameDeflateForEveryMebibyte:
    """zlib's level-9 deflate of 1 MiB of zeros, ended by a full flush (so it refers to nothing before it), handed out
    for each 1 MiB the archive writes: a valid deflate stream of the whole (3.2 MB, as zlib's own is 3.1), without
    deflating 3 GiB (10 s) to get it."""

    def __init__(self, zeros: bytes):
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.zeros, self.block = zeros, deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)

    def compress(self, data: bytes) -> bytes:
        assert data == self.zeros
        return self.block

    def flush(self) -> bytes:
        return zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # the final (empty) block


def _zip_bomb(path, gigabytes: int = 3) -> None:
    zeros = b"\x00" * (1024 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("model.pkl", "w", force_zip64=True) as member:
            assert hasattr(member, "_compressor"), "zipfile's writer no longer keeps its compressor where this expects it"
            member._compressor = _SameDeflateForEveryMebibyte(zeros)  # zipfile still counts the sizes and the CRC
            for _ in range(gigabytes * 1024):
                member.write(zeros)


BOMB = r"""
import django, json, os, sys
sys.path.insert(0, {root!r})
os.environ["DJANGO_SETTINGS_MODULE"] = "registry_site.settings.test"
django.setup()
from apps.validation.checks.pickle_scan import scan_file
with open({path!r}, "rb") as handle:
    result = scan_file(handle)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"unsafe": result["unsafe"], "peak_kib": peak}}))
"""


def test_a_zip_bomb_is_flagged_without_the_scanning_process_passing_300_mb(tmp_path):
    import json

    bomb = tmp_path / "bomb.zip"
    _zip_bomb(bomb)
    assert bomb.stat().st_size < 4 * 1024 * 1024
    done = subprocess.run([sys.executable, "-c", BOMB.format(root=str(ROOT), path=str(bomb))], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ}, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"zip bomb of {bomb.stat().st_size} bytes: peak RSS {result['peak_kib'] // 1024} MiB")
    assert any("cannot be shown safe" in u and "expands more than" in u for u in result["unsafe"])
    assert result["peak_kib"] < 300 * 1024


def test_a_gzip_bomb_trips_the_ratio_cap_and_a_deep_nest_the_depth_cap():
    import gzip

    inert = gzip.compress(b"\x00" * (64 * 1024 * 1024))
    assert scan_file(io.BytesIO(inert))["unsafe"] == []  # the walk stops at the first byte: no more is inflated than a loader reads
    bomb = gzip.compress(pickle.dumps(b"\x00" * (64 * 1024 * 1024), protocol=4))
    assert any("expands more than" in u for u in scan_file(io.BytesIO(bomb))["unsafe"])
    nested = pickle.dumps([1], protocol=2)
    for _ in range(6):
        nested = gzip.compress(nested)
    assert any("nested deeper than" in u for u in scan_file(io.BytesIO(nested))["unsafe"])
    small = scan_file(io.BytesIO(nested), limits_=Limits(max_bytes=2**40, max_ratio=10**6, max_depth=8))
    assert small["unsafe"] == [] and small["members"][-1].count("gzip") == 6


def test_the_byte_cap_is_a_finding():
    import zlib

    data = zlib.compress(pickle.dumps(os.urandom(3 * 1024 * 1024), protocol=4))
    result = scan_file(io.BytesIO(data), limits_=Limits(max_bytes=1024 * 1024, max_ratio=200, max_depth=4))
    assert any("VALIDATION_PICKLE_MAX_BYTES" in u for u in result["unsafe"])


# The allow-list is exactly what the reference files need.


def _imports(result: dict) -> set[tuple[str, str]]:
    return {tuple(name.rsplit(".", 1)) for name in result["imports"]}


def test_the_generated_allow_list_entries_are_exactly_what_the_reference_pickles_import():
    imported = set()
    references = [pickle_corpus.PLAIN, pickle_corpus.arrays(), *common_estimators().values()]
    for obj in references:
        for data in serialized(obj):
            result = _scan(data)
            assert result["unsafe"] == [], (type(obj).__name__, result["unsafe"])
            imported |= _imports(result)
    imported |= {pair for sample in torch_benign() for pair in _imports(_scan(sample.data))}
    generated = {pair for pair, entry in ALLOWED.items() if entry.origin == "generated"}
    assert generated - imported == set(), "entries no reference file needs"
    assert all(entry.reason for entry in ALLOWED.values())


def test_safetensors_files_are_not_pickles_whatever_their_header_length():
    # The first byte of a safetensors file is its header length's low byte: EXT1/2/4, MARK, NONE... start many of them.
    import json
    import struct

    flagged = []
    for pad in range(256):
        header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": {"p": "x" * pad}}).encode()
        result = _scan(struct.pack("<Q", len(header)) + header + struct.pack("<2f", 0.5, -1.0))
        if result["unsafe"]:
            flagged.append((len(header) % 256, result["unsafe"]))
    assert flagged == []


# PyTorch: real torch.save files (tests/validation/fixtures/torch, made by make_torch_fixtures.py with torch 2.13.0).


def test_the_torch_allow_list_entries_are_exactly_what_the_real_torch_files_import():
    imported = set()
    for sample in torch_benign():
        result = _scan(sample.data)
        assert result["unsafe"] == [], (sample.name, result["unsafe"])
        imported |= _imports(result)
    torch_entries = {pair for pair in ALLOWED if pair[0] == "torch" or pair[0].startswith("torch.")}
    assert {pair for pair in imported if pair[0].split(".")[0] == "torch"} == torch_entries
    assert {f"{name}.pt" for name in ("state_dict", "checkpoint", "tensors")} | {f"{name}-legacy.pt" for name in ("state_dict", "checkpoint", "tensors")} \
        == {sample.name.removeprefix("torch/") for sample in torch_benign()}


@pytest.mark.parametrize("name", TORCH_MODULES)
def test_a_whole_pickled_module_is_flagged_for_its_module_classes(name):
    unsafe = _scan(torch_file(name))["unsafe"]
    for cls in ("container.Sequential", "linear.Linear", "normalization.LayerNorm", "sparse.Embedding", "conv.Conv2d", "batchnorm.BatchNorm2d"):
        assert any(u.endswith(f"torch.nn.modules.{cls}") for u in unsafe), (cls, unsafe)
    assert not any("cannot be shown safe" in u for u in unsafe)  # the legacy format's ('module', class) ids give back the class


def test_the_raw_storages_a_torch_archive_names_are_data_and_every_other_member_is_walked():
    reads_as_an_import = b"cos\nsystem\n(S'true'\ntR."
    raw = _scan(zip_replacing(torch_file("state_dict.pt"), {"archive/data/0": reads_as_an_import}))
    assert raw["unsafe"] == [] and "archive/data/0" not in raw["containers"]  # torch.load reads data/0 as tensor bytes
    extra = _scan(zip_replacing(torch_file("state_dict.pt"), {"archive/data/99": reads_as_an_import}))
    assert extra["unsafe"] == ["archive/data/99: os.system"]  # no storage id names it: walked like any member


def test_a_legacy_torch_file_is_read_past_its_raw_storages_exactly():
    # 99 int64 tens: the element count reads as GLOBAL and the data as its two lines; torch.load reads them as data
    data = legacy_torch_file([10] * 99)
    assert _scan(data)["unsafe"] == []
    assert ("\x00" * 7, "\x00" * 7) in _machine(data[-(8 + 99 * 8) :]).imports  # the same bytes read as opcodes
    after = _scan(data + pickle.dumps(pickle_corpus.RunsCommand("true"), protocol=2))
    assert after["unsafe"] == ["posix.system"]  # whatever follows the storages is walked too
    assert any("ends inside its raw storage" in u for u in _scan(data[:-1])["unsafe"])
    wrong_count = data[: -99 * 8 - 8] + (98).to_bytes(8, "little") + data[-99 * 8 :]
    assert any("does not hold the 99 elements" in u for u in _scan(wrong_count)["unsafe"])
    assert any("lists a storage its object does not name" in u for u in _scan(data.replace(b"]q\x00X\x01\x00\x00\x000", b"]q\x00X\x01\x00\x00\x001"))["unsafe"])


def test_a_storage_id_must_name_a_storage_class_and_a_module_id_gives_back_its_class():
    not_a_storage = legacy_torch_file([1, 2], storage=b"ccollections\nOrderedDict\n")
    assert any("torch storage id that is not" in u for u in _scan(not_a_storage)["unsafe"])
    module_id = b"\x80\x02(" + b"X\x06\x00\x00\x00module" + b"ccollections\nOrderedDict\nNNtQ}b."  # BUILD on the class itself
    assert any("BUILD on the imported object collections.OrderedDict" in u for u in _scan(module_id)["unsafe"])


def test_pytorchs_old_tar_checkpoint_format_cannot_be_shown_safe():
    from .pickle_corpus import _tar

    unsafe = _scan(_tar({"storages": pickle.dumps(0, protocol=2), "tensors": pickle.dumps(0, protocol=2), "pickle": pickle.dumps({}, protocol=2)}))["unsafe"]
    assert any("old tar checkpoint format" in u for u in unsafe)


def test_a_plain_npy_array_whose_bytes_read_as_an_import_passes_and_an_object_array_is_walked(tmp_path):
    import numpy

    marker = tmp_path / "npy-marker"
    payload = pickle.dumps(None, protocol=0).replace(b"N", f"cos\nsystem\n(S'touch {marker}'\ntR".encode(), 1)
    raw = io.BytesIO()
    numpy.save(raw, numpy.frombuffer(payload, dtype=numpy.uint8))
    assert not numpy.load(io.BytesIO(raw.getvalue()), allow_pickle=True).dtype.hasobject  # numpy reads raw bytes
    assert not marker.exists()
    assert _scan(raw.getvalue())["unsafe"] == []

    structured = io.BytesIO()
    header = "{'descr': [('weights', '<f4'), ('label', '|O')], 'fortran_order': False, 'shape': (1,), }"
    structured.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload)
    assert _scan(structured.getvalue())["unsafe"], "an array holding objects is unpickled by numpy.load, so it is walked"


def test_a_safetensors_file_whose_header_length_starts_with_pickles_put_is_not_a_pickle():
    weights = bytes(1 << 20)  # a line (up to the first newline) far longer than the scanner reads
    header = json.dumps({"embeddings": {"dtype": "F32", "shape": [1 << 18], "data_offsets": [0, len(weights)]}}, separators=(",", ":")).encode()
    header += b" " * ((0x70 - len(header)) % 256)  # the header length's low byte is 0x70: b"p", pickle's PUT
    data = struct.pack("<Q", len(header)) + header + weights
    assert data[:1] == b"p" and b"\n" not in data
    for loads in (pickle.loads, pickle._loads):  # what the loaders do with it: fail at the first opcode
        with pytest.raises(Exception):
            loads(data)
    result = _scan(data)
    assert result["format"] == "not a pickle" and result["unsafe"] == []
