"""Graphs that the integration tests serve from real orchestrator and worker processes."""
