"""The Asterisk link: sans-I/O AMI and AGI cores, the AMI client, the FastAGI server, the call tracker,
the domain events, the bus and the dialplan contract's names."""

__version__ = "0.1.0"
