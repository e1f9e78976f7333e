"""Alerts (DESIGN §6b, docs/alerts.md): rules from a versioned file, one state machine per rule x
device, events in ``ops``, delivery through an outbox to webhooks (Alertmanager-compatible).

Imports only the ground package (iot_core) and libraries.
"""
