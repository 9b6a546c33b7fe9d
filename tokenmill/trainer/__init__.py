"""The DeepSpeed trainer for the paper's GPT (ALiBi, GeLU, embedding LayerNorm), reading the
shards and manifest of `tokenmill prepare`.

model.py        the GPT decoder and its FLOPs (read top to bottom)
presets.py      tiny, 125m, 350m, 760m, 1b3, 176b: one table, with their LR and batch
data.py         fixed-length blended samples over the shards, resumable
train.py        the DeepSpeed loop: start, resume, step, validate, log, checkpoint (`run`)
settings.py     TrainConfig and the DeepSpeed config it resolves to
optim.py        AdamW and the warmup + cosine LR schedule
distributed.py  the process group: started (a world of one without a launcher), torn down
checkpoint.py   save, resume and the atomic SAVE/latest
metrics.py      terminal log, metrics.jsonl, TensorBoard, throughput and MFU, batch digest
footprint.py    the memory a process needs, from the parameter count (warned about on CPU)
cli.py          `tokenmill train`
"""
