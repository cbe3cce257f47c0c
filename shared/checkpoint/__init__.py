"""Checkpointers, for code ported from LangGraph: runs are always checkpointed in the backend's
Redis (the embedded one or a cluster's); a checkpointer only says which embedded store keeps a
compiled graph's threads between calls."""
