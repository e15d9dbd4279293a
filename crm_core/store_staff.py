"""Agents, their skills and state history; users with scrypt password hashes."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, select
from sqlalchemy.orm import selectinload

from crm_core._base import StoreBase, TimeLike, to_dt
from crm_core.dto import AgentDTO, UserDTO
from crm_core.errors import Conflict, InvalidInput
from crm_core.models import ROLES, Agent, AgentSkill, AgentStateHistory, Skill, User
from crm_core.passwords import DUMMY_HASH, hash_password, verify_password

__all__ = ["StaffMixin"]


def _agent_dto(a: Agent) -> AgentDTO:
    skills = tuple(sorted((s.skill.name, s.proficiency) for s in a.skills))
    return AgentDTO(id=a.id, name=a.name, extension=a.extension, active=a.active, skills=skills)


def _user_dto(u: User) -> UserDTO:
    return UserDTO(username=u.username, role=u.role, agent_id=u.agent_id)


class StaffMixin(StoreBase):
    async def upsert_agent(
        self, agent_id: str, name: str, extension: str | None, skills: dict[str, int],
        *, active: bool = True,
    ) -> AgentDTO:
        """Create or update an agent; ``skills`` (name -> proficiency 1..10) replaces the set."""
        for skill, level in skills.items():
            if not skill or not 1 <= int(level) <= 10:
                raise InvalidInput(f"skill {skill!r}: proficiency must be 1..10, got {level!r}")
        values = {"name": name, "extension": extension, "active": active}
        async with self._write() as s:
            await s.execute(
                self._insert(Agent).values(id=agent_id, **values)
                .on_conflict_do_update(index_elements=["id"], set_=values)
            )
            if skills:
                await s.execute(
                    self._insert(Skill).values([{"name": n} for n in skills])
                    .on_conflict_do_nothing(index_elements=["name"])
                )
            await s.execute(delete(AgentSkill).where(AgentSkill.agent_id == agent_id))
            if skills:
                rows = await s.execute(select(Skill.name, Skill.id).where(Skill.name.in_(skills)))
                ids = dict(rows.all())
                s.add_all(
                    AgentSkill(agent_id=agent_id, skill_id=ids[n], proficiency=int(level))
                    for n, level in skills.items()
                )
        dto = await self.get_agent(agent_id)
        assert dto is not None
        return dto

    async def get_agent(self, agent_id: str) -> AgentDTO | None:
        stmt = (
            select(Agent).where(Agent.id == agent_id)
            .options(selectinload(Agent.skills).selectinload(AgentSkill.skill))
        )
        async with self._read() as s:
            agent = (await s.execute(stmt)).scalar_one_or_none()
            return _agent_dto(agent) if agent is not None else None

    async def record_agent_state(
        self, agent_id: str, state: str, reason: str | None, at: TimeLike,
        call_id: str | None = None,
    ) -> None:
        async with self._write() as s:
            s.add(AgentStateHistory(
                agent_id=agent_id, state=state, reason=reason, at=to_dt(at), call_id=call_id
            ))

    async def agent_states(self, agent_id: str) -> list[tuple[str, str | None, float]]:
        """The agent's state history as ``(state, reason, epoch)``, oldest first."""
        stmt = (
            select(AgentStateHistory).where(AgentStateHistory.agent_id == agent_id)
            .order_by(AgentStateHistory.at, AgentStateHistory.id)
        )
        async with self._read() as s:
            return [(r.state, r.reason, r.at.timestamp()) for r in (await s.execute(stmt)).scalars()]

    async def create_user(
        self, username: str, password: str, role: str, agent_id: str | None = None
    ) -> UserDTO:
        """Create a user; raises Conflict if the username is taken."""
        hashed = await _checked_hash(username, password, role)
        stmt = (
            self._insert(User)
            .values(username=username, password_hash=hashed, role=role, agent_id=agent_id)
            .on_conflict_do_nothing(index_elements=["username"])
            .returning(User.id)
        )
        async with self._write() as s:
            if (await s.execute(stmt)).scalar_one_or_none() is None:
                raise Conflict(f"user {username!r} already exists")
        return UserDTO(username=username, role=role, agent_id=agent_id)

    async def set_user(
        self, username: str, password: str, role: str, agent_id: str | None = None
    ) -> UserDTO:
        """Create the user, or reset its password, role and agent (provisioning at start-up)."""
        hashed = await _checked_hash(username, password, role)
        stmt = self._insert(User).values(username=username, password_hash=hashed, role=role, agent_id=agent_id)
        stmt = stmt.on_conflict_do_update(
            index_elements=["username"],
            set_={"password_hash": hashed, "role": role, "agent_id": agent_id, "active": True})
        async with self._write() as s:
            await s.execute(stmt)
        return UserDTO(username=username, role=role, agent_id=agent_id)

    async def _load_user(self, username: str) -> User | None:
        async with self._read() as s:
            stmt = select(User).where(User.username == username)
            return (await s.execute(stmt)).scalar_one_or_none()

    async def verify_user(self, username: str, password: str) -> UserDTO | None:
        """The user if the password matches (and the user is active), else ``None``."""
        user = await self._load_user(username)
        stored = user.password_hash if user is not None and user.active else DUMMY_HASH
        ok = await asyncio.to_thread(verify_password, password, stored)
        return _user_dto(user) if ok and user is not None and user.active else None

    async def get_user(self, username: str) -> UserDTO | None:
        user = await self._load_user(username)
        return _user_dto(user) if user is not None else None


async def _checked_hash(username: str, password: str, role: str) -> str:
    """Validate a new user's fields and hash the password (off the loop)."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {ROLES}, got {role!r}")
    if not username or not password:
        raise InvalidInput("username and password must not be empty")
    return await asyncio.to_thread(hash_password, password)
