"""Files for the unsafe-serialization scan, built by the tests: a malicious corpus (each file runs a shell command
that creates a marker file when loaded the way its `loader` says) and a benign set that must pass.

`prove_dangerous` loads every malicious file in a fresh Python process, exactly as a user would, and reports which
markers appeared, so a corpus entry that stopped being dangerous fails the test instead of passing silently.
"""

import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TORCH_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "torch"  # real torch.save files, see make_torch_fixtures.py
# EXT1, EXT2 and EXT4 codes, and what the loading process registers under them (copyreg allows one code per name)
EXTENSION_CODES = {1: (101, "os", "system"), 2: (40_000, "posix", "system"), 4: (70_000, "subprocess", "getoutput")}


@dataclass
class Sample:
    name: str  # the artifact path it is registered under
    data: bytes
    loader: str  # how prove_dangerous loads it: pickle, pickle-all, joblib, zip-member, zip-in-zip, tar-member, npy, ext
    member: str = ""
    family: str = ""


class RunsCommand:
    """Pickles as os.system(command): GLOBAL/STACK_GLOBAL + REDUCE."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class EvilNew:
    """NEWOBJ and NEWOBJ_EX call cls.__new__(cls, *args, **kwargs): this one runs its argument."""

    def __new__(cls, command, **kwargs):
        os.system(command)
        return super().__new__(cls)


class EvilState:
    """BUILD calls __setstate__(state): this one runs it."""

    def __setstate__(self, state):
        os.system(state)


def _text(value: str) -> bytes:
    data = value.encode()
    return b"\x8c" + bytes([len(data)]) + data


def _string(value: str) -> bytes:
    return b"S'" + value.encode() + b"'\n"


def _joblib(obj, compress) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, compress=compress)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _npy_object_array(obj) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([obj, 1], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def torch_file(name: str) -> bytes:
    return (TORCH_FIXTURES / name).read_bytes()


def legacy_torch_pickles(data: bytes) -> list[int]:
    """Where the first three pickles of a legacy torch file (magic number, protocol version, system info) end."""
    stream = io.BytesIO(data)
    ends = []
    for _ in range(3):
        pickle.load(stream)
        ends.append(stream.tell())
    return ends


def _binunicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def legacy_torch_file(values: list[int], *, storage: bytes = b"ctorch\nLongStorage\n", key: str = "0") -> bytes:
    """A legacy torch.save file of one int64 tensor, written opcode by opcode as torch 2.13 writes it (torch.load reads
    it back): magic number, protocol version, system info, the tensor (its storage as a persistent id), the storage
    keys, then the storage's element count and raw bytes."""
    count = len(values)
    pid = b"(" + _binunicode("storage") + storage + _binunicode(key) + _binunicode("cpu") + b"J" + struct.pack("<i", count) + b"NtQ"
    tensor = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(" + pid + b"K\x00J" + struct.pack("<i", count) + b"\x85K\x01\x85\x89"
              + b"ccollections\nOrderedDict\n)RtR.")
    head = b"".join(pickle.dumps(v, protocol=2) for v in (TORCH_LEGACY_MAGIC, 1001, {"little_endian": True}))
    return head + tensor + pickle.dumps([key], protocol=2) + struct.pack("<q", count) + struct.pack(f"<{count}q", *values)


def zip_replacing(data: bytes, members: dict[str, bytes]) -> bytes:
    """A copy of a zip archive (entries, order, compression) with some members' content replaced or added."""
    members = dict(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as real, zipfile.ZipFile(buffer, "w") as archive:
        for info in real.infolist():
            archive.writestr(info, members.pop(info.filename, None) or real.read(info))
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def malicious(marker_dir: Path) -> list[Sample]:
    """At least one file per opcode that imports or calls, per protocol 0-5, per bypass family of issue 8, per container."""
    samples: list[Sample] = []

    def add(name, data, loader="pickle", family="", member=""):
        samples.append(Sample(name, data, loader, member, family))

    def cmd(name: str) -> str:
        return f"touch {marker_dir / (name.replace('/', '_') + '.marker')}"

    for protocol in range(6):
        name = f"protocols/reduce-p{protocol}.pkl"
        add(name, pickle.dumps(RunsCommand(cmd(name)), protocol=protocol), family="GLOBAL/STACK_GLOBAL + REDUCE, each protocol")
    add("opcodes/global.pkl", b"cos\nsystem\n(" + _string(cmd("opcodes/global.pkl")) + b"tR.", family="GLOBAL")
    name = "opcodes/stack_global_memo.pkl"
    add(
        name,
        b"\x80\x04" + _text("os") + b"\x94" + _text("system") + b"\x94" + b"0" + b"h\x00h\x01\x93" + _text(cmd(name)) + b"\x85R.",
        family="STACK_GLOBAL with its names fetched from the memo (MEMOIZE, BINGET)",
    )
    add("opcodes/inst.pkl", b"(" + _string(cmd("opcodes/inst.pkl")) + b"ios\nsystem\n.", family="INST")
    add("opcodes/obj.pkl", b"(cos\nsystem\n" + _string(cmd("opcodes/obj.pkl")) + b"o.", family="OBJ")
    evil_new = b"c" + __name__.encode() + b"\nEvilNew\n"
    add("opcodes/newobj.pkl", b"\x80\x02" + evil_new + _string(cmd("opcodes/newobj.pkl")) + b"\x85\x81.", family="NEWOBJ")
    add("opcodes/newobj_ex.pkl", b"\x80\x04" + evil_new + _string(cmd("opcodes/newobj_ex.pkl")) + b"\x85}\x92.", family="NEWOBJ_EX")
    evil_state = b"c" + __name__.encode() + b"\nEvilState\n"
    add("opcodes/build_setstate.pkl", b"\x80\x02" + evil_state + b")\x81" + _string(cmd("opcodes/build_setstate.pkl")) + b"b.", family="BUILD with __setstate__")
    for size, fmt in ((1, "<B"), (2, "<H"), (4, "<i")):
        name = f"opcodes/ext{size}.pkl"
        opcode = {1: b"\x82", 2: b"\x83", 4: b"\x84"}[size]
        add(name, b"\x80\x02" + opcode + struct.pack(fmt, EXTENSION_CODES[size][0]) + _string(cmd(name)) + b"\x85R.", loader="ext", family=f"EXT{size} with copyreg")
    # The five bypass families of issue 8.
    for name, prefix in (("bypass/int-hex.pkl", b"I0x1\n0"), ("bypass/long-hex.pkl", b"L0x1L\n0"), ("bypass/int-octal-c-only.pkl", b"I010\n0")):
        add(name, prefix + b"cos\nsystem\n(" + _string(cmd(name)) + b"tR.", family="integer forms pickletools rejects but the unpickler accepts")
    add("bypass/second-pickle.pt", pickle.dumps({"weights": [1.0]}, protocol=2) + pickle.dumps(RunsCommand(cmd("bypass/second-pickle.pt")), protocol=2),
        loader="pickle-all", family="a harmless pickle followed by a malicious one")
    name = "bypass/sixth-pickle.pt"
    add(name, b"".join(pickle.dumps(i, protocol=2) for i in range(5)) + pickle.dumps(RunsCommand(cmd(name)), protocol=4),
        loader="pickle-all", family="a harmless pickle followed by a malicious one")
    add("bypass/garbage-after.pkl", b"cos\nsystem\n(" + _string(cmd("bypass/garbage-after.pkl")) + b"tR" + b"\xff\xfe not a pickle",
        family="code that runs before a parse error")
    for compress in ("zlib", "gzip", "bz2", "lzma", "xz"):
        name = f"bypass/compressed-{compress}.joblib"
        add(name, _joblib(RunsCommand(cmd(name)), (compress, 3)), loader="joblib", family="a compressed joblib file")
    name = "bypass/after-array.joblib"
    add(name, _joblib([np.arange(50.0), RunsCommand(cmd(name))], 0), loader="joblib", family="joblib: code after raw array bytes")
    name = "bypass/dotted-attribute.pkl"
    add(
        name,
        b"\x80\x04" + _text("sklearn.utils") + _text("Bunch.__init__.__builtins__.get") + b"\x93" + _text("eval") + b"\x85R"
        + _text(f"__import__('os').system({cmd(name)!r})") + b"\x85R.",
        family="protocol 4 dotted attribute path under an allowed package",
    )
    for name in ("names/model.sav", "names/model.dill", "names/model.npy", "names/model.cloudpickle", "names/model"):
        add(name, pickle.dumps(RunsCommand(cmd(name)), protocol=4), family="a pickle under a name that is not a pickle's")
    # Containers, nested.
    name = "containers/torch-archive.pt"
    add(name, _zip({"archive/data.pkl": pickle.dumps({"state": RunsCommand(cmd(name))}, protocol=2), "archive/data/0": b"\x00" * 16, "archive/version": b"3\n"}),
        loader="zip-member", member="archive/data.pkl", family="PyTorch zip archive")
    name = "containers/torch-state-dict.pt"
    add(name, zip_replacing(torch_file("state_dict.pt"), {"archive/data.pkl": pickle.dumps(OrderedDict(w=RunsCommand(cmd(name))), protocol=2)}),
        loader="zip-member", member="archive/data.pkl", family="PyTorch zip archive")
    legacy = torch_file("state_dict-legacy.pt")
    magic_end, version_end, sys_info_end = legacy_torch_pickles(legacy)
    name = "containers/torch-legacy-2nd-pickle.pt"
    add(name, legacy[:magic_end] + pickle.dumps(RunsCommand(cmd(name)), protocol=2) + legacy[version_end:],
        loader="pickle-all", family="PyTorch legacy format: a malicious pickle among the five torch.load reads")
    name = "containers/torch-legacy-3rd-pickle.pt"
    add(name, legacy[:version_end] + pickle.dumps({"little_endian": RunsCommand(cmd(name))}, protocol=2) + legacy[sys_info_end:],
        loader="pickle-all", family="PyTorch legacy format: a malicious pickle among the five torch.load reads")
    name = "containers/zip-in-zip.zip"
    add(name, _zip({"inner.zip": _zip({"archive/data.pkl": pickle.dumps(RunsCommand(cmd(name)), protocol=2)})}),
        loader="zip-in-zip", member="inner.zip", family="nested containers")
    name = "containers/model.tar"
    add(name, _tar({"model/pickle": pickle.dumps(RunsCommand(cmd(name)), protocol=2)}), loader="tar-member", member="model/pickle", family="tar")
    name = "containers/joblib-in-zip.zip"
    add(name, _zip({"model.joblib": _joblib(RunsCommand(cmd(name)), ("gzip", 3))}), loader="zip-joblib", member="model.joblib", family="nested containers")
    name = "containers/object-array.npy"
    add(name, _npy_object_array(RunsCommand(cmd(name))), loader="npy", family="numpy object array (np.load(allow_pickle=True))")
    return samples


PROVE = r"""
import copyreg, io, json, os, pickle, sys, tarfile, zipfile
import joblib, numpy
sys.path.insert(0, {root!r})
for code, module, name in {codes!r}.values():
    copyreg.add_extension(module, name, code)
results = {{}}
for path, loader, member in json.load(sys.stdin):
    data = open(path, "rb").read()
    try:
        if loader in ("pickle", "ext"):
            pickle.loads(data)
        elif loader == "pickle-all":
            stream = io.BytesIO(data)
            while stream.tell() < len(data):
                pickle.load(stream)
        elif loader == "joblib":
            joblib.load(io.BytesIO(data))
        elif loader == "zip-member":
            pickle.loads(zipfile.ZipFile(io.BytesIO(data)).read(member))
        elif loader == "zip-in-zip":
            inner = zipfile.ZipFile(io.BytesIO(zipfile.ZipFile(io.BytesIO(data)).read(member)))
            pickle.loads(inner.read(inner.namelist()[0]))
        elif loader == "zip-joblib":
            joblib.load(io.BytesIO(zipfile.ZipFile(io.BytesIO(data)).read(member)))
        elif loader == "tar-member":
            pickle.loads(tarfile.open(fileobj=io.BytesIO(data)).extractfile(member).read())
        elif loader == "npy":
            numpy.load(io.BytesIO(data), allow_pickle=True)
    except Exception as exc:
        results[path] = repr(exc)[:200]
print(json.dumps(results))
"""


def prove_dangerous(samples: list[Sample], folder: Path, marker_dir: Path) -> dict[str, bool]:
    """Load every sample in one fresh interpreter the way its loader says; which ones created their marker."""
    jobs = []
    for sample in samples:
        path = folder / sample.name.replace("/", "_")
        path.write_bytes(sample.data)
        jobs.append((str(path), sample.loader, sample.member))
    script = PROVE.format(root=str(ROOT), codes=EXTENSION_CODES)
    subprocess.run([sys.executable, "-c", script], input=json.dumps(jobs), capture_output=True, text=True, cwd=ROOT, timeout=300, check=True)
    return {s.name: (marker_dir / (s.name.replace("/", "_") + ".marker")).exists() for s in samples}


# The benign set.

PLAIN = {
    "none": None, "flags": [True, False], "ints": [0, -1, 2**31, 2**70, -(2**100)], "floats": [0.5, float("inf")], "complex": 1 + 2j,
    "text": "naïve ☃", "bytes": b"\x00\xff", "empty_bytes": b"", "bytearray": bytearray(b"ab"), "tuple": (1, "a"), "set": {1, 2},
    "frozenset": frozenset({"x"}), "nested": {"a": [{"b": (None,)}]}, "ordered": OrderedDict(w=[1.0, 2.0]),
}


def fitted_models():
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=60, n_features=5, random_state=0)
    return {
        "logistic": LogisticRegression(max_iter=200).fit(X, y),
        "pipeline": Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=200))]).fit(X, y),
    }


def arrays() -> dict:
    return {
        "floats": np.arange(1000.0),
        "ints": np.arange(12, dtype=np.int32).reshape(3, 4),
        "fortran": np.asfortranarray(np.ones((4, 3))),
        "objects": np.array([1, "x", None], dtype=object),
        "structured": np.zeros(3, dtype=[("id", "<i8"), ("score", "<f4"), ("name", "<U5")]),
        "empty": np.zeros((0, 3)),
        "scalar": np.float64(2.5),
        "zero_d": np.array(7),
        "big_endian": np.arange(5, dtype=">i4"),
        "dates": np.array(["2024-01-01"], dtype="datetime64[D]"),
    }


def benign() -> list[Sample]:
    samples = [Sample(f"plain/p{p}.pkl", pickle.dumps(PLAIN, protocol=p), "pickle") for p in range(6)]
    for name, model in fitted_models().items():
        samples += [Sample(f"sklearn/{name}-p{p}.pkl", pickle.dumps(model, protocol=p), "pickle") for p in (2, 4, 5)]
        for compress in (0, 3, ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)):
            label = compress[0] if isinstance(compress, tuple) else ("zlib" if compress else "raw")
            samples.append(Sample(f"sklearn/{name}-{label}.joblib", _joblib(model, compress), "joblib"))
    samples += [Sample(f"numpy/arrays-{c}.joblib", _joblib(arrays(), c), "joblib") for c in (0, 3)]
    samples += [Sample(f"numpy/arrays-p{p}.pkl", pickle.dumps(arrays(), protocol=p), "pickle") for p in (2, 4, 5)]
    buffer = io.BytesIO()
    np.save(buffer, np.arange(10.0))
    samples.append(Sample("numpy/weights.npy", buffer.getvalue(), "npy"))
    samples.append(Sample("numpy/archive.npz", _zip({"a.npy": buffer.getvalue()}), "zip"))
    samples.append(Sample("plain/gzip-of-pickle.gz", gzip.compress(pickle.dumps(PLAIN, protocol=4)), "gzip"))
    samples.append(Sample("plain/bz2.pkl.bz2", bz2.compress(pickle.dumps(PLAIN, protocol=4)), "bz2"))
    samples.append(Sample("plain/xz.pkl.xz", lzma.compress(pickle.dumps(PLAIN, protocol=4)), "xz"))
    samples.append(Sample("plain/zlib.pkl.z", zlib.compress(pickle.dumps(PLAIN, protocol=4)), "zlib"))
    return samples + torch_benign()


TORCH_MODULES = ("module.pt", "module-legacy.pt")  # a whole pickled nn.Module: imports code-bearing classes, must be flagged


def torch_benign() -> list[Sample]:
    """The real torch.save files that must pass: a state dict, a checkpoint with optimizer state and a set of tensors,
    each in the zip format and the legacy one (torch.load(weights_only=True) accepts all of them)."""
    names = sorted(p.name for p in TORCH_FIXTURES.glob("*.pt") if p.name not in TORCH_MODULES)
    return [Sample(f"torch/{name}", torch_file(name), "torch") for name in names]


def common_estimators() -> dict:
    """The reference estimators the allow-list's scikit-learn entries were generated from (fitted on small data)."""
    import warnings

    from sklearn import cluster, compose, decomposition, ensemble, feature_extraction, impute, linear_model, naive_bayes
    from sklearn import neighbors, neural_network, pipeline, preprocessing, svm, tree
    from sklearn.datasets import make_classification, make_regression

    Xc, yc = make_classification(n_samples=80, n_features=6, n_informative=4, n_classes=3, random_state=0)
    Xr, yr = make_regression(n_samples=80, n_features=6, random_state=0)
    texts = ["red apple pie", "green apple tart", "blue berry pie"] * 5
    cases = {
        "LogisticRegression": (linear_model.LogisticRegression(max_iter=300), Xc, yc),
        "LinearRegression": (linear_model.LinearRegression(), Xr, yr),
        "Ridge": (linear_model.Ridge(), Xr, yr),
        "Lasso": (linear_model.Lasso(), Xr, yr),
        "ElasticNet": (linear_model.ElasticNet(), Xr, yr),
        "SGDClassifier": (linear_model.SGDClassifier(random_state=0), Xc, yc),
        "RandomForestClassifier": (ensemble.RandomForestClassifier(n_estimators=3, random_state=0), Xc, yc),
        "RandomForestRegressor": (ensemble.RandomForestRegressor(n_estimators=3, random_state=0), Xr, yr),
        "ExtraTreesClassifier": (ensemble.ExtraTreesClassifier(n_estimators=3, random_state=0), Xc, yc),
        "GradientBoostingClassifier": (ensemble.GradientBoostingClassifier(n_estimators=3, random_state=0), Xc, yc),
        "GradientBoostingRegressor": (ensemble.GradientBoostingRegressor(n_estimators=3, random_state=0), Xr, yr),
        "HistGradientBoostingClassifier": (ensemble.HistGradientBoostingClassifier(max_iter=3), Xc, yc),
        "DecisionTreeClassifier": (tree.DecisionTreeClassifier(random_state=0), Xc, yc),
        "DecisionTreeRegressor": (tree.DecisionTreeRegressor(random_state=0), Xr, yr),
        "KNeighborsClassifier": (neighbors.KNeighborsClassifier(), Xc, yc),
        "SVC": (svm.SVC(), Xc, yc),
        "SVR": (svm.SVR(), Xr, yr),
        "LinearSVC": (svm.LinearSVC(), Xc, yc),
        "KMeans": (cluster.KMeans(n_clusters=3, n_init=1, random_state=0), Xc, None),
        "PCA": (decomposition.PCA(n_components=2), Xc, None),
        "StandardScaler": (preprocessing.StandardScaler(), Xc, None),
        "MinMaxScaler": (preprocessing.MinMaxScaler(), Xc, None),
        "OneHotEncoder": (preprocessing.OneHotEncoder(), (Xc > 0).astype(int), None),
        "LabelEncoder": (preprocessing.LabelEncoder(), yc, None),
        "SimpleImputer": (impute.SimpleImputer(), Xc, None),
        "GaussianNB": (naive_bayes.GaussianNB(), Xc, yc),
        "MultinomialNB": (naive_bayes.MultinomialNB(), np.abs(Xc), yc),
        "TfidfVectorizer": (feature_extraction.text.TfidfVectorizer(), texts, None),
        "MLPClassifier": (neural_network.MLPClassifier(max_iter=20, random_state=0), Xc, yc),
        "Pipeline": (pipeline.Pipeline([("scale", preprocessing.StandardScaler()), ("clf", linear_model.LogisticRegression())]), Xc, yc),
        "ColumnTransformer": (compose.ColumnTransformer([("num", preprocessing.StandardScaler(), [0, 1]), ("rest", "passthrough", [2, 3])]), Xc, None),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the tiny fits
        return {name: (est.fit(X, y) if y is not None else est.fit(X)) for name, (est, X, y) in cases.items()}


def serialized(obj) -> list[bytes]:
    """Every way the reference files are written: pickle protocols 0-5, joblib raw and zlib-compressed."""
    return [pickle.dumps(obj, protocol=p) for p in range(6)] + [_joblib(obj, 0), _joblib(obj, 3)]
