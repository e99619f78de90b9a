"""resources faults (being written)."""

__all__: list[str] = []
