"""The advisor: profile, method catalogue, rules table and engine. Pure Python, no torch."""
