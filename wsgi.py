"""Composition root for a WSGI server: `gunicorn wsgi:app` (settings from GATEKEEPER_* variables)."""

from gatekeeper import create_app

app = create_app()
