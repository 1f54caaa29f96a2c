"""The ``mucode`` command: one module per command group, each verb a thin shell over a library call.

solve.py   execute, solve        run a program on tests; solve a problem (locally or on a server)
train.py   train ..., eval       µCode expert iteration and its stages; pass rates on a problem set
models.py  models ...            the default model bundle and trained checkpoints
serve.py   serve, worker         the HTTP server and remote job workers
sandbox.py sandbox ...           the Python environment candidate code runs in
"""

from __future__ import annotations

import typer

from . import models, sandbox, serve, solve, train

app = typer.Typer(help="mucode: multi-turn fix-and-rerank code generation (µCode).", no_args_is_help=True)
app.command()(solve.execute)
app.command()(solve.solve)
app.add_typer(train.app, name="train")
app.command("eval")(train.eval_command)
app.add_typer(models.app, name="models")
app.add_typer(sandbox.app, name="sandbox")
app.command()(serve.serve)
app.command()(serve.worker)

__all__ = ["app"]
