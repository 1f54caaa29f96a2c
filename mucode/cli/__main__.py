"""``python -m mucode.cli``: the command without its console script (accelerate launch, tests)."""

from . import app

app()
