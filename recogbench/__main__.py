"""``python -m recogbench`` runs the CLI."""

from recogbench.cli import app

app()
