"""A module the zygote tests preload: its presence in a forked child proves the preload."""

TABLE = list(range(1000))
