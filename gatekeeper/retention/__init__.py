"""Retention: how long photos, templates and request details are kept, and removing them after.

`deadlines` is the pure rule (no I/O, no clock); `purge` finds what is due and deletes it, with
reports and the orphan sweep; `holds` keeps a photo past its deadline for a stated reason;
`leaving` records a leaver and erases a person; `subject_access` gathers every photo of a person for
a subject access request.
"""
