"""The dbt project of the warehouse (stage, agg, curated) and its Python runner.

The SQL lives in ``models/`` and ``macros/``; :mod:`dbt_project.runner` runs dbt with the
connection taken from :mod:`iot_core.settings`.
"""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent
