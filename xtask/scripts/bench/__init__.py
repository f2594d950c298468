"""`cargo xtask bench`: wharf against reference tools, side by side (see bench.py)."""
