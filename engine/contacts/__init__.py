"""Contacts: CRM mapping, streamed import with rejects, and reading a contact back."""

from engine.contacts.importer import ContactImporter, ImportSummary
from engine.contacts.lookup import ContactView, TimelineEntry, find_contact
from engine.contacts.mapping import CRM_FILE, CrmMapping, load_mapping, read_mapping
from engine.contacts.reader import FileFormat

__all__ = [
    # mapping
    "CRM_FILE",
    "CrmMapping",
    "load_mapping",
    "read_mapping",
    # import
    "ContactImporter",
    "FileFormat",
    "ImportSummary",
    # lookup
    "ContactView",
    "TimelineEntry",
    "find_contact",
]
