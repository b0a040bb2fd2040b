"""The Cadence component library (in the spirit of Create ML Components).

Import from here: ``from device.components import Transformer, SlidingWindow``.
"""

from .core import (
    ChainedTransformer,
    Estimator,
    Examples,
    FunctionTransformer,
    StreamStage,
    TemporalPipeline,
    TemporalTransformer,
    Transformer,
    UpdatableEstimator,
)
from .errors import CadenceError, CompositionError, PersistenceError, StorageFullError, first_line
from .events import Event, EventHandler, EventRecorder, emit
from .features import Featurizer, QuantizedFeature, iterate_sync
from .metrics import (
    UNKNOWN,
    ClassificationMetrics,
    RegressionMetrics,
    mean_absolute_error,
    root_mean_squared_error,
)
from .persistence import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    decode_state,
    encode_state,
    load_state,
    save_state,
    sha256_file,
)
from .stream import (
    Handoff,
    HandoffClosed,
    TemporalFeature,
    batched,
    chunked,
    collect,
    from_iterable,
    map_stream,
    pump,
    run,
)
from .temporal import Downsampler, GapFiller, SlidingWindow

__all__ = [
    "CadenceError",
    "ChainedTransformer",
    "ClassificationMetrics",
    "CompositionError",
    "Downsampler",
    "Estimator",
    "Event",
    "Examples",
    "EventHandler",
    "EventRecorder",
    "Featurizer",
    "FunctionTransformer",
    "GapFiller",
    "Handoff",
    "HandoffClosed",
    "PersistenceError",
    "QuantizedFeature",
    "RegressionMetrics",
    "SlidingWindow",
    "StorageFullError",
    "StreamStage",
    "TemporalFeature",
    "TemporalPipeline",
    "TemporalTransformer",
    "Transformer",
    "UNKNOWN",
    "UpdatableEstimator",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "batched",
    "chunked",
    "collect",
    "decode_state",
    "emit",
    "first_line",
    "encode_state",
    "from_iterable",
    "iterate_sync",
    "load_state",
    "map_stream",
    "mean_absolute_error",
    "pump",
    "root_mean_squared_error",
    "run",
    "save_state",
    "sha256_file",
]
