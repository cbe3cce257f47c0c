"""Caches of node results (`compile(cache=InMemoryCache())` with `add_node(...,
cache_policy=CachePolicy(...))`), as LangGraph's `langgraph.cache`."""
