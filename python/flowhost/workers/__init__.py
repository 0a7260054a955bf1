"""Child processes that run steps: warm pools, the Python zygote, limits, the host end of the
worker protocol (docs/protocol.md)."""
