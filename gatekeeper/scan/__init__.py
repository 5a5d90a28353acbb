"""Scanning what is already public: a website, a folder or a social media archive, each image decided
as of today with the gate's engine and rules, recorded as an outside placement, and watched."""
