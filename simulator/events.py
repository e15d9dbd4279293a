"""Event factory: every AMI event with Asterisk 22's header set and order (copied from the traces)."""

from __future__ import annotations

import json
import time

from .model import CAUSE_TXT, Bridge, Channel, Headers

CALL = "call,all"
DIALPLAN = "dialplan,all"
USER = "user,all"
SYSTEM = "system,all"

# SoftHangupRequest's Cause is the AST_SOFTHANGUP_* flag given to ast_softhangup() (include/asterisk/
# channel.h), not a Q.850 cause: a hangup cause, if any, shows in HangupRequest and Hangup.
SOFTHANGUP_SHUTDOWN = 4  # ast_softhangup_all(): core stop/restart
SOFTHANGUP_APPUNLOAD = 16  # the end of every pbx run (__ast_pbx_run), whatever ended it
SOFTHANGUP_EXPLICIT = 32  # AGI HANGUP (res_agi handle_hangup)


def chan_event(name: str, priv: str, ch: Channel, *extra: tuple[str, str]) -> Headers:
    return [("Event", name), ("Privilege", priv), *ch.snapshot(), *extra]


def newchannel(ch: Channel) -> Headers:
    return chan_event("Newchannel", CALL, ch)


def newstate(ch: Channel) -> Headers:
    return chan_event("Newstate", CALL, ch)


def newexten(ch: Channel, app: str, data: str) -> Headers:
    return chan_event("Newexten", DIALPLAN, ch, ("Extension", ch.exten), ("Application", app),
                      ("AppData", data))


def varset(ch: Channel, var: str, value: str) -> Headers:
    return chan_event("VarSet", DIALPLAN, ch, ("Variable", var), ("Value", value))


def newcallerid(ch: Channel) -> Headers:
    return chan_event("NewCallerid", CALL, ch, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"))


def newconnectedline(ch: Channel) -> Headers:
    return chan_event("NewConnectedLine", CALL, ch)


def localbridge(one: Channel, two: Channel) -> Headers:
    return [("Event", "LocalBridge"), ("Privilege", CALL), *one.snapshot("LocalOne"),
            *two.snapshot("LocalTwo"), ("Context", one.meta.get("local_ctx", one.context)),
            ("Exten", one.meta.get("local_exten", one.exten)),
            ("LocalOptimization", "Yes")]


def dialbegin(caller: Channel | None, dest: Channel, dialstring: str) -> Headers:
    src = caller.snapshot() if caller is not None else []
    return [("Event", "DialBegin"), ("Privilege", CALL), *src, *dest.snapshot("Dest"),
            ("DialString", dialstring)]


def dialend(caller: Channel | None, dest: Channel, status: str) -> Headers:
    src = caller.snapshot() if caller is not None else []
    return [("Event", "DialEnd"), ("Privilege", CALL), *src, *dest.snapshot("Dest"),
            ("DialStatus", status)]


def _bridge(b: Bridge) -> Headers:
    return [("BridgeUniqueid", b.uniqueid), ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"), ("BridgeCreator", "<unknown>"),
            ("BridgeName", "<unknown>"), ("BridgeNumChannels", str(len(b.channels))),
            ("BridgeVideoSourceMode", "none")]


def bridge_create(b: Bridge) -> Headers:
    return [("Event", "BridgeCreate"), ("Privilege", CALL), *_bridge(b)]


def bridge_destroy(b: Bridge) -> Headers:
    return [("Event", "BridgeDestroy"), ("Privilege", CALL), *_bridge(b)]


def bridge_enter(b: Bridge, ch: Channel) -> Headers:
    return [("Event", "BridgeEnter"), ("Privilege", CALL), *_bridge(b), *ch.snapshot()]


def bridge_leave(b: Bridge, ch: Channel) -> Headers:
    return [("Event", "BridgeLeave"), ("Privilege", CALL), *_bridge(b), *ch.snapshot()]


def hangup_handler_push(ch: Channel, handler: str) -> Headers:
    return chan_event("HangupHandlerPush", DIALPLAN, ch, ("Handler", handler))


def hangup_handler_run(ch: Channel, handler: str) -> Headers:
    return chan_event("HangupHandlerRun", DIALPLAN, ch, ("Handler", handler))


def moh_start(ch: Channel, klass: str = "default") -> Headers:
    return chan_event("MusicOnHoldStart", CALL, ch, ("Class", klass))


def moh_stop(ch: Channel) -> Headers:
    return chan_event("MusicOnHoldStop", CALL, ch)


def mixmonitor_start(ch: Channel) -> Headers:
    return chan_event("MixMonitorStart", CALL, ch)


def mixmonitor_stop(ch: Channel) -> Headers:
    return chan_event("MixMonitorStop", CALL, ch)


def mixmonitor_mute(ch: Channel, direction: str, state: str) -> Headers:
    return chan_event("MixMonitorMute", CALL, ch, ("Direction", direction), ("State", state))


def user_event(ch: Channel, name: str, fields: list[tuple[str, str]]) -> Headers:
    return chan_event("UserEvent", USER, ch, ("UserEvent", name), *fields)


def soft_hangup_request(ch: Channel, flag: int = SOFTHANGUP_APPUNLOAD) -> Headers:
    """``flag``: the AST_SOFTHANGUP_* value (16 at a pbx end, 4 at a shutdown, 32 for AGI HANGUP)."""
    return chan_event("SoftHangupRequest", CALL, ch, ("Cause", str(flag)))


def hangup_request(ch: Channel, cause: int) -> Headers:
    return chan_event("HangupRequest", CALL, ch, ("Cause", str(cause)))


def hangup(ch: Channel, cause: int) -> Headers:
    return chan_event("Hangup", CALL, ch, ("Cause", str(cause)),
                      ("Cause-txt", CAUSE_TXT.get(cause, "Unknown")))


def shutdown(restart: bool, cleanly: bool) -> Headers:
    """``Shutdown`` (class ``system``), main/asterisk.c really_quit(), as Asterisk 22 sends it."""
    return [("Event", "Shutdown"), ("Privilege", SYSTEM), ("Shutdown", "Cleanly" if cleanly else "Uncleanly"),
            ("Restart", "True" if restart else "False")]


def fully_booted(uptime: int, last_reload: int) -> Headers:
    return [("Event", "FullyBooted"), ("Privilege", SYSTEM), ("Uptime", str(uptime)),
            ("LastReload", str(last_reload)), ("Status", "Fully Booted")]


def dtmf_begin(ch: Channel, digit: str, direction: str = "Received") -> Headers:
    return chan_event("DTMFBegin", "dtmf,all", ch, ("Digit", digit), ("Direction", direction))


def dtmf_end(ch: Channel, digit: str, ms: int, direction: str = "Received") -> Headers:
    return chan_event("DTMFEnd", "dtmf,all", ch, ("Digit", digit), ("DurationMs", str(ms)),
                      ("Direction", direction))


def device_state(device: str, state: str) -> Headers:
    return [("Event", "DeviceStateChange"), ("Privilege", CALL), ("Device", device), ("State", state)]


def originate_response(action_id: str | None, ok: bool, channel: str, target: Headers,
                       reason: int, uniqueid: str, cid_num: str, cid_name: str) -> Headers:
    h: Headers = [("Event", "OriginateResponse"), ("Privilege", CALL)]
    if action_id is not None:
        h.append(("ActionID", action_id))
    h += [("Response", "Success" if ok else "Failure"), ("Channel", channel), *target,
          ("Reason", str(reason)), ("Uniqueid", uniqueid), ("CallerIDNum", cid_num),
          ("CallerIDName", cid_name)]
    return h


def status_item(ch: Channel, seconds: int, variables: list[str], action_id: str | None) -> Headers:
    h: Headers = [("Event", "Status"), ("Privilege", "Call"), *ch.snapshot(),
                  ("Type", "Local"), ("DNID", ""), ("EffectiveConnectedLineNum", ch.con_num),
                  ("EffectiveConnectedLineName", ch.con_name), ("TimeToHangup", "0"),
                  ("BridgeID", ch.bridge.uniqueid if ch.bridge else ""), ("Application", ch.app),
                  ("Data", ch.appdata), ("Nativeformats", "(slin)"), ("Readformat", "slin"),
                  ("Readtrans", ""), ("Writeformat", "slin"), ("Writetrans", ""),
                  ("Callgroup", "0"), ("Pickupgroup", "0"), ("Seconds", str(seconds))]
    h += [("Variable", v) for v in variables]
    if action_id is not None:
        h.append(("ActionID", action_id))
    return h


def core_show_channel(ch: Channel, seconds: int, action_id: str | None) -> Headers:
    h: Headers = [("Event", "CoreShowChannel")]
    if action_id is not None:
        h.append(("ActionID", action_id))
    hh, rem = divmod(seconds, 3600)
    mm, ss = divmod(rem, 60)
    h += [*ch.snapshot(), ("Application", ch.app), ("ApplicationData", ch.appdata),
          ("Duration", f"{hh:02d}:{mm:02d}:{ss:02d}"),
          ("BridgeId", ch.bridge.uniqueid if ch.bridge else "")]
    return h


def _cid(v: str) -> str:
    return "" if v == "<unknown>" else v


def cel(ch: Channel, name: str, app: str, data: str, extra: str = "", peer: str = "") -> Headers:
    """``Event: CEL`` as cel_manager sends it (class ``call``; ``UniqueID``/``LinkedID`` spelling)."""
    return [("Event", "CEL"), ("Privilege", CALL), ("EventName", name), ("AccountCode", ch.accountcode),
            ("CallerIDnum", _cid(ch.cid_num)), ("CallerIDname", _cid(ch.cid_name)),
            ("CallerIDani", ch.meta.get("ani", "")), ("CallerIDrdnis", ""), ("CallerIDdnid", ""),
            ("Exten", ch.exten), ("Context", ch.context), ("Channel", ch.name), ("Application", app),
            ("AppData", data), ("EventTime", time.strftime("%Y-%m-%d %H:%M:%S")),
            ("AMAFlags", "DOCUMENTATION"), ("UniqueID", ch.uniqueid), ("LinkedID", ch.linkedid),
            ("Userfield", ""), ("Peer", peer), ("PeerAccount", ""), ("Extra", extra)]


def cel_extra(**fields: object) -> str:
    """CEL ``Extra``: compact JSON in the given key order (``{"hangupcause":16,...}``)."""
    return json.dumps(fields, separators=(",", ":"))


def queue_params(queue: str, strategy: str, action_id: str | None) -> Headers:
    h: Headers = [("Event", "QueueParams"), ("Queue", queue), ("Max", "0"), ("Strategy", strategy),
                  ("Calls", "0"), ("Holdtime", "0"), ("TalkTime", "0"), ("Completed", "0"), ("Abandoned", "0"),
                  ("ServiceLevel", "0"), ("ServicelevelPerf", "0.0"), ("ServicelevelPerf2", "0.0"), ("Weight", "0")]
    return h + ([("ActionID", action_id)] if action_id is not None else [])


def queue_member(queue: str, name: str, location: str, login_time: int, action_id: str | None) -> Headers:
    h: Headers = [("Event", "QueueMember"), ("Queue", queue), ("Name", name), ("Location", location),
                  ("StateInterface", location), ("Membership", "static"), ("Penalty", "0"), ("CallsTaken", "0"),
                  ("LastCall", "0"), ("LastPause", "0"), ("LoginTime", str(login_time)), ("InCall", "0"),
                  ("Status", "1"), ("Paused", "0"), ("PausedReason", ""), ("Wrapuptime", "0")]
    return h + ([("ActionID", action_id)] if action_id is not None else [])
