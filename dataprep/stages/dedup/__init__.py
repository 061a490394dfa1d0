"""dedup: exact and MinHash-LSH near-duplicate removal (see stage.py for the shape)."""

from .config import DedupConfig
from .stage import DedupStage

__all__ = ["DedupConfig", "DedupStage"]
