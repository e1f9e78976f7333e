"""Upkeep of the warehouse as a whole (DESIGN §4): retention per layer and the health of
TimescaleDB's background jobs. The SQL that creates roles, databases and schemas is in init/."""
