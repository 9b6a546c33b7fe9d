"""The DeepSpeed trainer for the paper's GPT (ALiBi, GeLU, embedding LayerNorm), reading the
shards and manifest of `tokenmill prepare`.

model.py    the GPT decoder and its FLOPs (read top to bottom)
presets.py  tiny, 125m, 350m, 760m, 1b3, 176b: one table
data.py     fixed-length blended samples over the shards, resumable
train.py    the DeepSpeed loop: config, schedule, logging, checkpoints, validation
cli.py      `tokenmill train`
"""
