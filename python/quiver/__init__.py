"""The Python client of the Quiver feature store.

Training sets and saved datasets come over Arrow Flight as Arrow record
batches; online lookups and push go over HTTP. Every error is a
QuiverError with the gRPC code name and the server's reason.

quiver.torch (needs torch) reads saved training sets into tensors, sharded
across DataLoader workers and distributed ranks.
"""

from ._client import Client, DatasetPart, DatasetParts, OnlineFeatures, SavedDataset, Spine, TrainingSet
from ._errors import QuiverError

__all__ = ["Client", "DatasetPart", "DatasetParts", "OnlineFeatures", "QuiverError", "SavedDataset", "Spine", "TrainingSet"]
__version__ = "0.1.0"
