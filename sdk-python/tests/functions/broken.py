"""A function file that cannot be imported."""

raise ImportError("no module named 'nothing_here'")
