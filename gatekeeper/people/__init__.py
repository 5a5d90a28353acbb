"""People as records: finding and editing them, their face templates and who a face is.

`lookup` (finding a person, the safeguarding flag), `edit` (adding and correcting), `search`,
`templates` (encrypted face templates and their keys), `enrolment`, `identity` (what each viewer
is told a face is), `dpia` (no biometric matching before a DPIA is recorded).
"""
