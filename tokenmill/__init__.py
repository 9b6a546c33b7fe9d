"""tokenmill: public web corpora (OSCAR, C4, the Pile) -> Megatron token shards -> training."""

__version__ = "0.1.0"
