"""The flow engine: definitions, discovery, transitions between steps, the host."""
