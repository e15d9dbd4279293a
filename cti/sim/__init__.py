"""Asterisk 22 simulator: real AMI (server) and FastAGI (client) on loopback, v3 dialplan contract."""

from .actors import AgentPhone, CallRecord, Caller, default_phones
from .core import AsteriskSim, SimConfig

__all__ = ["AgentPhone", "AsteriskSim", "CallRecord", "Caller", "SimConfig", "default_phones"]
