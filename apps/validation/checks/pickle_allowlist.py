"""The one reviewed table of what a pickle may import: exact (module, qualified name) pairs, each with its reason.

No prefixes, no capitalisation rules, no attribute walking: `("sklearn.utils", "Bunch.__init__.__globals__")` is
allowed only if that exact pair is listed (it is not). An allowed name may be imported and called by the unpickler
(REDUCE, NEWOBJ, OBJ, INST, BUILD); what the callable then does with the pickle's data is its own logic and is not
judged here (see README, "What the unsafe-serialization scan guarantees").

How the table was made: `tests/validation/pickle_corpus.py` pickles plain data at protocols 0-5, numpy arrays and
scalars, and the fitted estimators of COMMON_ESTIMATORS (pickle protocols 0-5 and joblib, compressed or not), and
`test_pickle_scanner.py` checks that every entry tagged "generated" is imported by one of those files and
that nothing they import is missing. The PyTorch entries come the same way from the real `torch.save` files of
`tests/validation/fixtures/torch/` (made with torch 2.13.0 by `make_torch_fixtures.py`), and each is also on torch's
own `torch.load(weights_only=True)` list (`torch/_weights_only_unpickler.py`, `_get_allowed_globals`). Entries tagged "spelling" are the same callables under a name older writers use.
Adding an entry is a security decision: say what the callable does with attacker-chosen arguments.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    reason: str
    origin: str = "generated"  # "generated": seen in the reference pickles; "spelling": another writer's name for one


def _group(module: str, names: tuple[str, ...], reason: str, origin: str = "generated") -> dict[tuple[str, str], Entry]:
    return {(module, name): Entry(reason, origin) for name in names}


PY2 = "Python 2 spelling written by protocols 0-2; the unpickler maps it to the Python 3 name, which is listed too"
ESTIMATOR = "scikit-learn estimator class: REDUCE/NEWOBJ make an empty instance, BUILD sets its fitted attributes"
PART = "scikit-learn class held by a fitted estimator (loss, link, tree, optimizer, encoder): built from plain state"
CYTHON = "Cython's generated __pyx_unpickle_<Class>(type, checksum, state): refuses a type that is not <Class>"
STORAGE = (
    "torch storage class named in a persistent id: torch.load maps the name to a dtype (StorageType) without importing "
    "it, and the storage is data read raw from the file"
)

ALLOWED: dict[tuple[str, str], Entry] = {
    # Plain data: what protocols 0-5 need to rebuild builtin containers and scalars.
    ("builtins", "set"): Entry("protocols 0-1 write a set as set(list)"),
    ("builtins", "frozenset"): Entry("protocols 0-3 write a frozenset as frozenset(list)"),
    ("builtins", "bytearray"): Entry("protocols 0-4 write a bytearray as bytearray(bytes)"),
    ("builtins", "bytes"): Entry("protocols 0-2 write an empty bytes as bytes()"),
    ("builtins", "complex"): Entry("complex(real, imag)"),
    ("builtins", "slice"): Entry("slice(start, stop, step); ColumnTransformer keeps column slices"),
    ("builtins", "object"): Entry("copyreg._reconstructor's base class at protocols 0-1: object.__new__(cls)"),
    ("__builtin__", "set"): Entry(PY2),
    ("__builtin__", "frozenset"): Entry(PY2),
    ("__builtin__", "bytearray"): Entry(PY2),
    ("__builtin__", "bytes"): Entry(PY2),
    ("__builtin__", "complex"): Entry(PY2),
    ("__builtin__", "slice"): Entry(PY2),
    ("__builtin__", "object"): Entry(PY2),
    ("copyreg", "_reconstructor"): Entry("protocols 0-1 rebuild any instance as object.__new__(cls); cls is itself an import checked here"),
    ("copy_reg", "_reconstructor"): Entry(PY2),
    ("_codecs", "encode"): Entry("protocols 0-2 write bytes as _codecs.encode(str, 'latin1'): a pure text-to-bytes codec call"),
    ("collections", "OrderedDict"): Entry("dict subclass; state dicts of weights are often OrderedDicts"),
    # numpy: arrays, dtypes, scalars, random generators as numpy 2 pickles them.
    ("numpy", "ndarray"): Entry("array type passed to _reconstruct; NEWOBJ/BUILD give an array from shape, dtype and bytes"),
    ("numpy", "dtype"): Entry("dtype(str, align, copy) + __setstate__: a data type description, no code"),
    ("numpy", "float64"): Entry("scalar type stored as an estimator's dtype parameter (OneHotEncoder, TfidfVectorizer)"),
    ("numpy._core.multiarray", "_reconstruct"): Entry("ndarray.__new__(subtype, shape, dtype): an empty array to BUILD into"),
    ("numpy._core.multiarray", "scalar"): Entry("scalar(dtype, bytes): a numpy scalar from its raw bytes"),
    ("numpy._core.numeric", "_frombuffer"): Entry("protocol 5 arrays: frombuffer(buffer, dtype, shape, order)"),
    ("numpy.core.multiarray", "_reconstruct"): Entry("numpy 1.x spelling of numpy._core.multiarray._reconstruct", "spelling"),
    ("numpy.core.multiarray", "scalar"): Entry("numpy 1.x spelling of numpy._core.multiarray.scalar", "spelling"),
    ("numpy.core.numeric", "_frombuffer"): Entry("numpy 1.x spelling of numpy._core.numeric._frombuffer", "spelling"),
    ("numpy.random._pickle", "__randomstate_ctor"): Entry("RandomState(bit generator) held by GradientBoosting and MLP estimators"),
    ("numpy.random._pickle", "__bit_generator_ctor"): Entry("makes the named bit generator class; numpy checks it against its own registry"),
    ("numpy.random._pickle", "__generator_ctor"): Entry("numpy Generator(bit generator), held by HistGradientBoosting"),
    ("numpy.random._mt19937", "MT19937"): Entry("Mersenne Twister bit generator state"),
    ("numpy.random._pcg64", "PCG64"): Entry("PCG64 bit generator state"),
    ("numpy.random.bit_generator", "SeedSequence"): Entry("seed sequence of a bit generator"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"): Entry(CYTHON),
    # joblib: the placeholder joblib.dump writes instead of an array; joblib.load then reads the raw array bytes.
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): Entry("attributes only (subclass, shape, order, dtype); joblib reads the array data after it"),
    # scikit-learn: the classes the reference estimators' pickles import (COMMON_ESTIMATORS in the test corpus).
    **_group("sklearn.linear_model._logistic", ("LogisticRegression",), ESTIMATOR),
    **_group("sklearn.linear_model._base", ("LinearRegression",), ESTIMATOR),
    **_group("sklearn.linear_model._ridge", ("Ridge",), ESTIMATOR),
    **_group("sklearn.linear_model._coordinate_descent", ("Lasso", "ElasticNet"), ESTIMATOR),
    **_group("sklearn.linear_model._stochastic_gradient", ("SGDClassifier",), ESTIMATOR),
    **_group("sklearn.linear_model._sgd_fast", ("Hinge",), PART),
    **_group("sklearn.ensemble._forest", ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier"), ESTIMATOR),
    **_group("sklearn.ensemble._gb", ("GradientBoostingClassifier", "GradientBoostingRegressor"), ESTIMATOR),
    **_group("sklearn.ensemble._hist_gradient_boosting.gradient_boosting", ("HistGradientBoostingClassifier",), ESTIMATOR),
    **_group("sklearn.ensemble._hist_gradient_boosting.binning", ("_BinMapper",), PART),
    **_group("sklearn.ensemble._hist_gradient_boosting.predictor", ("TreePredictor",), PART),
    **_group("sklearn.tree._classes", ("DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier"), ESTIMATOR),
    **_group("sklearn.tree._tree", ("Tree",), PART),
    **_group("sklearn.dummy", ("DummyClassifier", "DummyRegressor"), PART),
    **_group("sklearn._loss.loss", ("HalfMultinomialLoss", "HalfSquaredError"), PART),
    **_group("sklearn._loss.link", ("IdentityLink", "Interval", "MultinomialLogit"), PART),
    **_group("sklearn._loss._loss", ("CyHalfMultinomialLoss", "CyHalfSquaredError"), PART),
    **_group("sklearn._loss._loss", ("__pyx_unpickle_CyHalfMultinomialLoss",), CYTHON),
    **_group("sklearn.neighbors._classification", ("KNeighborsClassifier",), ESTIMATOR),
    **_group("sklearn.neighbors._kd_tree", ("KDTree",), PART),
    **_group("sklearn.neighbors._kd_tree", ("newObj",), "newObj(cls) = cls.__new__(cls); cls is itself an import checked here"),
    **_group("sklearn.metrics._dist_metrics", ("EuclideanDistance64",), PART),
    **_group("sklearn.metrics._dist_metrics", ("newObj",), "newObj(cls) = cls.__new__(cls); cls is itself an import checked here"),
    **_group("sklearn.svm._classes", ("SVC", "SVR", "LinearSVC"), ESTIMATOR),
    **_group("sklearn.cluster._kmeans", ("KMeans",), ESTIMATOR),
    **_group("sklearn.decomposition._pca", ("PCA",), ESTIMATOR),
    **_group("sklearn.preprocessing._data", ("StandardScaler", "MinMaxScaler"), ESTIMATOR),
    **_group("sklearn.preprocessing._encoders", ("OneHotEncoder",), ESTIMATOR),
    **_group("sklearn.preprocessing._label", ("LabelEncoder", "LabelBinarizer"), ESTIMATOR),
    **_group("sklearn.preprocessing._function_transformer", ("FunctionTransformer",), "ColumnTransformer's 'passthrough' step; its func is None"),
    **_group("sklearn.impute._base", ("SimpleImputer",), ESTIMATOR),
    **_group("sklearn.naive_bayes", ("GaussianNB", "MultinomialNB"), ESTIMATOR),
    **_group("sklearn.feature_extraction.text", ("TfidfVectorizer", "TfidfTransformer"), ESTIMATOR),
    **_group("sklearn.neural_network._multilayer_perceptron", ("MLPClassifier",), ESTIMATOR),
    **_group("sklearn.neural_network._stochastic_optimizers", ("AdamOptimizer",), PART),
    **_group("sklearn.pipeline", ("Pipeline",), "Pipeline: a list of (name, estimator) steps; each step's class is checked here"),
    **_group("sklearn.compose._column_transformer", ("ColumnTransformer",), ESTIMATOR),
    # PyTorch: what torch.save writes for tensors, state dicts and checkpoints (never nn.Module classes: a whole pickled
    # module imports its code-bearing classes and is refused, as torch.load(weights_only=True) refuses it).
    **_group("torch._utils", ("_rebuild_tensor_v2",), (
        "tensor from (storage, offset, size, stride, requires_grad, hooks, metadata): Tensor.set_ checks the bounds "
        "against the storage; hooks are objects this pickle built, run only by a backward pass"
    )),
    **_group("torch._utils", ("_rebuild_parameter",), "nn.Parameter(tensor, requires_grad) with its hooks, as _rebuild_tensor_v2"),
    **_group("torch._utils", ("_rebuild_qtensor",), "quantized tensor from a storage and (qscheme, scale, zero point): checks axis and lengths"),
    **_group("torch._utils", ("_rebuild_sparse_tensor",), "sparse COO/CSR tensor from its index and value tensors; torch.load validates it after loading"),
    **_group("torch.serialization", ("_get_layout",), "looks a layout up by its name (torch.sparse_coo) in a table; unknown names raise"),
    **_group("torch", ("Size",), "tuple subclass: torch.Size(tuple of ints)"),
    **_group("torch", ("device",), "torch.device('cpu'|'cuda', index): parses a device name, allocates nothing"),
    **_group("torch", ("per_tensor_affine",), "a qscheme constant passed to _rebuild_qtensor; imported, never called"),
    **_group("torch", (
        "BFloat16Storage", "BoolStorage", "ByteStorage", "CharStorage", "DoubleStorage", "FloatStorage", "HalfStorage",
        "IntStorage", "LongStorage", "QInt8Storage", "ShortStorage",
    ), STORAGE),
}


def is_allowed(module: str, name: str) -> bool:
    return (module, name) in ALLOWED
