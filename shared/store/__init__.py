"""Long-term memory: `arqgraph.store.base` (the API), `arqgraph.store.memory` (in process)."""
