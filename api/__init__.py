"""The platform's HTTP API (seed 000, DESIGN §7): an entry point over stage, ml and MongoDB."""
