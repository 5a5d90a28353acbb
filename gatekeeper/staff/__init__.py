"""Staff: accounts, roles and what each role may do (`roles.PERMISSIONS`), passwords and API tokens."""
