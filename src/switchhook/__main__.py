"""`python -m switchhook` runs the CLI."""

from switchhook.cli import main

main()
