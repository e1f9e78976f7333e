"""Local mode (no Docker): each service of DESIGN §2 as a background process under `.local/`.

Test fixtures use the same functions to start throw-away PostgreSQL and MongoDB servers.
"""
