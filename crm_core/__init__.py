"""crm_core: the CRM schema, the store (call log, customers, agents, users) and analytics.

Imports nothing from the other packages of the project.
"""

from crm_core.dto import AgentDTO, CallDTO, ContactDTO, Customer360, CustomerDTO, UserDTO
from crm_core.errors import Conflict, CrmError, InvalidInput, NotFound
from crm_core.phone import normalize_phone
from crm_core.store import Store

__all__ = [
    "AgentDTO",
    "CallDTO",
    "Conflict",
    "ContactDTO",
    "CrmError",
    "Customer360",
    "CustomerDTO",
    "InvalidInput",
    "NotFound",
    "Store",
    "UserDTO",
    "normalize_phone",
]
