"""Checks run by `xtask/scripts/interop.py`; one module per consumer family."""
