"""Megatron-format token shards (writer, reader, format spec) and the run manifest."""

from tokenmill.shards.megatron import ShardReader, ShardWriter, dtype_for_vocab

__all__ = ["ShardReader", "ShardWriter", "dtype_for_vocab"]
