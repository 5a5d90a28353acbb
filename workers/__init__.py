"""Background jobs: thin Huey tasks, each calling one service."""
