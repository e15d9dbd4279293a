"""Asterisk 22 simulator: real AMI (server) and FastAGI (client) on loopback, v3 dialplan contract.

Its modules import one way, top to bottom (a lower one gets what it needs from above through a
``typing.Protocol`` it defines, handed in by ``core``)::

    scenarios                      the v3 scenarios, recorded (uses record)
    core                           AsteriskSim: builds and wires everything below; shutdown/restart
    background                     the rest of the PBX's traffic (internal, queue-test, foreign Redirects)
    ami -> ami_actions -> ami_session    AMI server, what each action does, one connection
    originate                      Originate: a Local pair, then the dialplan or one application
    dialplan | agi                 the contract's and the site's contexts (AgiClient protocol) | FastAGI client
    far                            the [callers] / [agent-phones] / [internal-phones] halves of Local channels
    switch                         channels, variables, CEL, bridges, DTMF, MixMonitor, hangups (EventSink)
    ledger, config, events         ground truth per call, SimConfig (+ BackgroundMix), AMI event factory
    model, actors, site, recording, manager_conf    Channel/Bridge, callers and phones, the site's other
                                   contexts, WAV files, users/filters
"""

from .actors import AgentPhone, Caller, CallRecord, default_phones
from .core import AsteriskSim, BackgroundMix, BackgroundStats, SimConfig
from .manager_conf import AmiUser, load_manager_conf

__all__ = ["AgentPhone", "AmiUser", "AsteriskSim", "BackgroundMix", "BackgroundStats", "CallRecord", "Caller",
           "SimConfig", "default_phones", "load_manager_conf"]
