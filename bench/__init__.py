"""flowhost's benchmark harness: `python -m bench [SCENARIO...]`; see bench/README.md."""
