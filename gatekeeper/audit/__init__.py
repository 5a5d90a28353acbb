"""The audit log as people read it: filtered pages, one person's trail, and CSV exports.

Writing and verifying the hash-chained log is `consent_db.audit`; this package only reads it.
"""
