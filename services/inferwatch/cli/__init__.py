"""The ``inferwatch`` command line (Typer)."""
