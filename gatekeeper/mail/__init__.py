"""Email: the outbox (messages written with the change that causes them) and their delivery over SMTP.

A building block below the domains: it knows the database, the job queue's requests and the mail
settings, never a person or a consent rule. A use case that must tell someone something writes
the message with `outbox.queue_message` in its own unit of work; a `JobKind.SEND_MAIL` job sends
it after the commit (`delivery.deliver`), so no request ever waits on an SMTP server.
"""
