"""Use cases: one module each, collaborators passed in, sessions flushed but never committed."""
