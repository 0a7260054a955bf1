"""`python -m flowhost` is the `flowhost` command."""

from flowhost.cli.main import main

main()
