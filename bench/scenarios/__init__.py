"""One module per scenario: NAME, DESCRIPTION and `async def run(ctx)`; see bench/README.md."""
