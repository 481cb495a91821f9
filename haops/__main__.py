"""`python -m haops` runs the command line."""

from haops.cli import main

main()
