"""`arqgraph dashboard`: a web page over a pool, reading through `arqgraph.admin` (the API the
CLI's admin commands use), with no store of its own: runs, a run's graph, steps, state, events
and error, workers and queues; and, when started with `--allow-control`, cancel and resume."""
