"""The DeepSpeed trainer for the paper's GPT (ALiBi, GeLU, embedding LayerNorm).

Not built yet: see the trainer issue. It will read OUT/manifest.json and the shards.
"""
