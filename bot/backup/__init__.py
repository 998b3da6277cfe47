"""``cadesk backup`` and ``cadesk restore``: a consistent copy of a running bot's data, and its
way back into an empty data directory (docs/operations.md#backup)."""
