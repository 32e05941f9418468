"""``python -m registry_gc`` runs the command line."""

from .cli import main

main()
