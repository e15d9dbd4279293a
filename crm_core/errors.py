"""Errors of the CRM store.

    CrmError
     +-- InvalidInput (also a ValueError): unknown column, bad phone, bad role, bad proficiency
     +-- Conflict: a phone number already belongs to another customer, a username is taken
     +-- NotFound (also a LookupError): the customer or call asked for does not exist
"""

from __future__ import annotations

__all__ = ["Conflict", "CrmError", "InvalidInput", "NotFound"]


class CrmError(Exception):
    error_id = "crm-error"


class InvalidInput(CrmError, ValueError):
    error_id = "invalid-input"


class Conflict(CrmError):
    error_id = "conflict"


class NotFound(CrmError, LookupError):
    error_id = "not-found"
