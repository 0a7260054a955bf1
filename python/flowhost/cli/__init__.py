"""The `flowhost` command."""
