"""The test suite (a package, so ``pytest`` and ``python3 -m pytest`` import its support modules alike)."""
