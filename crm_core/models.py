"""The CRM schema: typed SQLAlchemy 2.0 declarative models (no I/O).

Timestamps are ``UTCDateTime``: timezone-aware UTC datetimes in Python, ``timestamptz`` on
PostgreSQL and naive-UTC ISO text on SQLite (so they sort correctly there too).

Call log rows deliberately carry no foreign keys to customers or agents: a milestone of a
call must never be refused because a referenced row is missing (write-ahead call log).
All relationships are ``lazy="raise"``; load them with explicit ``selectinload``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "CHANNELS",
    "OUTCOMES",
    "ROLES",
    "Agent",
    "AgentSkill",
    "AgentStateHistory",
    "Base",
    "Call",
    "CallEvent",
    "Callback",
    "Contact",
    "Customer",
    "CustomerPhone",
    "CustomerRevenue",
    "Disposition",
    "Queue",
    "Recording",
    "RecordingAccess",
    "Skill",
    "UTCDateTime",
    "User",
    "table_of",
    "utcnow",
]

CHANNELS = ("phone", "web", "email", "sms", "fax")
DIRECTIONS = ("inbound", "outbound")
# "unknown": the call ended while the AMI link was down after it had been offered to an agent,
# so whether the agent answered cannot be known (AMI keeps no history).
# "system": ended unanswered by the PBX itself (an Asterisk shutdown or restart), not an abandon
OUTCOMES = ("in_progress", "answered", "abandoned", "ivr_hangup", "failed", "unknown", "system", "redirected")
ROLES = ("agent", "supervisor", "admin")

# Stable constraint names, so Alembic autogenerate and migrations can refer to them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect; naive input is taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


def table_of(model: type[Base]) -> Table:
    """The :class:`Table` a model is mapped to (SQLAlchemy types ``__table__`` as any FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_no: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    segment: Mapped[str | None] = mapped_column(String(64))
    value_tier: Mapped[str | None] = mapped_column(String(32))
    monthly_revenue: Mapped[float] = mapped_column(Float, default=0.0)
    tenure_months: Mapped[int] = mapped_column(Integer, default=0)
    account_manager: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    erased: Mapped[bool] = mapped_column(Boolean, default=False)

    phones: Mapped[list[CustomerPhone]] = relationship(
        back_populates="customer", lazy="raise", cascade="all, delete-orphan",
        order_by="CustomerPhone.id",
    )


class CustomerRevenue(Base):
    """Revenue of a customer per month (``YYYY-MM``): the history behind the value tier and
    the falling-revenue churn signal."""

    __tablename__ = "customer_revenue"
    __table_args__ = (UniqueConstraint("customer_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    month: Mapped[str] = mapped_column(String(7))
    revenue: Mapped[float] = mapped_column(Float)


class CustomerPhone(Base):
    __tablename__ = "customer_phones"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    e164: Mapped[str] = mapped_column(String(16), unique=True, index=True)
    label: Mapped[str | None] = mapped_column(String(32))

    customer: Mapped[Customer] = relationship(back_populates="phones", lazy="raise")


class Contact(Base):
    """One interaction with a customer on any channel."""

    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_customer_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    agent_id: Mapped[str | None] = mapped_column(String(64))
    disposition: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    call_id: Mapped[str | None] = mapped_column(String(128), index=True)


class Call(Base):
    """The call log: one row per call, written on arrival and updated at each milestone."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_customer_arrived", "customer_id", "arrived_at"),
        Index("ix_calls_agent_arrived", "agent_id", "arrived_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(128), unique=True)
    cti_call_id: Mapped[str | None] = mapped_column(String(64))
    uniqueid: Mapped[str | None] = mapped_column(String(64))
    linkedid: Mapped[str | None] = mapped_column(String(64))
    server: Mapped[str] = mapped_column(String(64), default="default")
    channel: Mapped[str | None] = mapped_column(String(128))
    caller_num: Mapped[str | None] = mapped_column(String(64))
    caller_name: Mapped[str | None] = mapped_column(String(200))
    dnis: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(Integer)
    ivr_path: Mapped[str | None] = mapped_column(String(1000))
    ivr_choice: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(64), index=True)
    skills: Mapped[str | None] = mapped_column(String(500))
    arrived_at: Mapped[datetime | None] = mapped_column(index=True)
    queued_at: Mapped[datetime | None]
    offered_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(32), default="in_progress", index=True)
    wait_s: Mapped[float | None] = mapped_column(Float)
    talk_s: Mapped[float | None] = mapped_column(Float)
    agent_id: Mapped[str | None] = mapped_column(String(64))  # the agent of ours who answered
    # who or what answered: the channel bridged with the caller (our agent's leg or another party)
    answered_by: Mapped[str | None] = mapped_column(String(128))
    offers: Mapped[int] = mapped_column(Integer, default=0)
    hangup_cause: Mapped[str | None] = mapped_column(String(32))
    hangup_side: Mapped[str | None] = mapped_column(String(32))
    end_reason: Mapped[str | None] = mapped_column(String(64))
    # not seen ending (an AMI outage): it ended between these (ended_at = outage_from, last seen alive)
    outage_from: Mapped[datetime | None]
    outage_to: Mapped[datetime | None]
    disposition: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call", lazy="raise", order_by="CallEvent.at"
    )


class CallEvent(Base):
    """The call's timeline. ``dedup_key`` is unique per call: writing an event twice is a no-op."""

    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("call_pk", "dedup_key", name="uq_call_events_call_dedup"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    dedup_key: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    call: Mapped[Call] = relationship(back_populates="events", lazy="raise")


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    extension: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    skills: Mapped[list[AgentSkill]] = relationship(
        back_populates="agent", lazy="raise", cascade="all, delete-orphan"
    )


class Skill(Base):
    __tablename__ = "skills"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(200))


class AgentSkill(Base):
    __tablename__ = "agent_skills"

    agent_id: Mapped[str] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    skill_id: Mapped[int] = mapped_column(
        ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True
    )
    proficiency: Mapped[int] = mapped_column(Integer, default=5)  # 1..10

    agent: Mapped[Agent] = relationship(back_populates="skills", lazy="raise")
    skill: Mapped[Skill] = relationship(lazy="raise")


class AgentStateHistory(Base):
    __tablename__ = "agent_state_history"
    __table_args__ = (Index("ix_agent_state_history_agent_at", "agent_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(String(64))  # no FK: history is never refused
    state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime]
    call_id: Mapped[str | None] = mapped_column(String(128))


class Queue(Base):
    __tablename__ = "queues"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    skills: Mapped[str | None] = mapped_column(String(500))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    service_level_s: Mapped[int] = mapped_column(Integer, default=20)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Disposition(Base):
    __tablename__ = "dispositions"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    is_complaint: Mapped[bool] = mapped_column(Boolean, default=False)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    call_pk: Mapped[int | None] = mapped_column(
        ForeignKey("calls.id", ondelete="SET NULL"), index=True
    )
    path: Mapped[str] = mapped_column(String(1000), unique=True)
    duration_s: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    erased: Mapped[bool] = mapped_column(Boolean, default=False)

    accesses: Mapped[list[RecordingAccess]] = relationship(
        back_populates="recording", lazy="raise"
    )


class RecordingAccess(Base):
    """Audit log of who played, downloaded or erased a recording."""

    __tablename__ = "recording_access"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), index=True)
    username: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(32))

    recording: Mapped[Recording] = relationship(back_populates="accesses", lazy="raise")


class Callback(Base):
    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    call_id: Mapped[str | None] = mapped_column(String(128), index=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL")
    )
    phone: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str | None] = mapped_column(String(64))
    skills: Mapped[str | None] = mapped_column(String(500))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    agent_id: Mapped[str | None] = mapped_column(String(64))
    completed_at: Mapped[datetime | None]
