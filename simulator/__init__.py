"""Asterisk 22 simulator: real AMI (server) and FastAGI (client) on loopback, v3 dialplan contract."""

from .actors import AgentPhone, Caller, CallRecord, default_phones
from .core import AsteriskSim, SimConfig
from .manager_conf import AmiUser, load_manager_conf

__all__ = ["AgentPhone", "AmiUser", "AsteriskSim", "CallRecord", "Caller", "SimConfig", "default_phones",
           "load_manager_conf"]
