"""Ground floor of the platform: settings, connections and shared helpers.

Imports nothing of the project (DESIGN §10); every other package may import it.
"""
