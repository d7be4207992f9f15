"""A Flower app (digits CNN) with privagg's secure aggregation and DP switched on from pyproject.toml."""
