"""`python -m tokenmill.trainer ...`: the `train` command on its own (for launchers:
`torchrun --nproc-per-node 2 -m tokenmill.trainer --data OUT/manifest.json ...`)."""

import typer

from tokenmill.trainer.cli import train

typer.run(train)
