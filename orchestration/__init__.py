"""Shared Airflow glue for the thin DAG files in ``dags/``: default args, failure callbacks, assets.

Entry-point floor (DESIGN §10): may import the domain packages and iot_core, never the reverse.
"""
