"""The seed documents' demonstrations, runnable on arqgraph (see README, "Examples from the seed
documents")."""
