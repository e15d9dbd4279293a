"""CTI call-center backend: the Asterisk link (AMI, FastAGI, call tracker), the simulator, the CLI."""

__version__ = "0.1.0"
