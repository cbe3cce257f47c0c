"""arqgraph's benchmark suite: `python -m bench [--quick]` (see bench/cli.py and the README)."""
