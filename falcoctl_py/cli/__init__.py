"""The Typer CLI: one module per command group; each command makes one core call and renders it."""
