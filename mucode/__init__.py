"""mucode: multi-turn fix-and-rerank code generation (µCode), served and trained."""

__version__ = "0.1.0"
