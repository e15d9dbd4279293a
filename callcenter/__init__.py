"""The composition root: settings, the app that wires every package together, and the ``cti`` command.

The only package that may import every other one; nothing imports it.
"""
