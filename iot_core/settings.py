"""The one place that reads configuration.

Values come from environment variables first, then the project's ``.env`` file (development
defaults). Nothing else in the project hard-codes a host, port, database or credential.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_file() -> Path:
    return Path(os.environ.get("IOT_ENV_FILE", PROJECT_ROOT / ".env"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=_env_file(), env_file_encoding="utf-8", extra="ignore")

    # MongoDB
    mongo_host: str = "127.0.0.1"
    mongo_port: int = 27017
    mongo_db: str = "iot"
    mongo_user: str = ""
    mongo_password: SecretStr = SecretStr("")

    # Warehouse
    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    pg_superuser: str = "postgres"
    pg_superuser_password: SecretStr = SecretStr("")
    warehouse_db: str = "iot_warehouse"
    airflow_db: str = "airflow"
    mlflow_db: str = "mlflow"
    loader_user: str = "iot_loader"
    loader_password: SecretStr = SecretStr("")
    transformer_user: str = "iot_transformer"
    transformer_password: SecretStr = SecretStr("")
    analyst_user: str = "iot_analyst"
    analyst_password: SecretStr = SecretStr("")
    api_user: str = "iot_api"
    api_password: SecretStr = SecretStr("")
    airflow_db_user: str = "airflow"
    airflow_db_password: SecretStr = SecretStr("")
    mlflow_db_user: str = "mlflow"
    mlflow_db_password: SecretStr = SecretStr("")

    # Airflow
    airflow_port: int = 8080
    airflow_admin_user: str = "airflow"
    airflow_admin_password: SecretStr = SecretStr("")
    airflow_jwt_secret: SecretStr = SecretStr("")
    airflow_fernet_key: SecretStr = SecretStr("")
    airflow_dags_paused_at_creation: bool = True
    airflow_parallelism: int = 6
    # iot_raw_extract: "@continuous" (the next run starts when one ends: freshest stage) or a cron
    # expression / preset; env EXTRACT_SCHEDULE (the older name IOT_EXTRACT_SCHEDULE still counts)
    extract_schedule: str = Field("@continuous",
                                  validation_alias=AliasChoices("extract_schedule", "iot_extract_schedule"))

    # MLflow
    mlflow_port: int = 5000
    mlflow_tracking_uri: str = ""  # empty: http://127.0.0.1:<mlflow_port>

    # API
    api_port: int = 8000

    # Data
    day_timezone: str = "UTC"
    training_timezone: str = "UTC"
    generator_users: int = 10
    generator_sensors: int = 5
    generator_seed: int = 42
    generator_bad_rate: float = 0.01
    # the stream first writes what devices sent while it was stopped, at most this far back (0: off)
    generator_catch_up_hours: float = 24

    # CSV exports of the sensor readings (seed 000): a directory; empty = <LOCAL_DIR>/exports
    export_dir: str = ""
    export_latest_days: int = 7

    # Trip summary (seed 003): Parquet lake root (local path or s3://bucket/prefix) and config
    trips_lake_root: str = ""  # required by the job (CLI --root / DAG param otherwise)
    trips_config: str = ""  # path of aggregations.json (CLI --config / DAG param otherwise)
    trips_s3_endpoint: str = ""  # S3-compatible endpoint (MinIO, Ceph, ...); empty = AWS
    trips_gap_minutes: float = 10.0
    trips_shard_size: int = 25

    # Local state (local mode only): data directories, pids and logs
    local_dir: Path = PROJECT_ROOT / ".local"

    def role_credentials(self, role: str) -> tuple[str, str]:
        """(user, password) of a warehouse role: superuser, loader, transformer, analyst, api, airflow, mlflow."""
        if role == "superuser":
            return self.pg_superuser, self.pg_superuser_password.get_secret_value()
        try:
            user = getattr(self, f"{role}_user")
            password = getattr(self, f"{role}_password")
        except AttributeError:
            user = getattr(self, f"{role}_db_user", None)
            password = getattr(self, f"{role}_db_password", None)
            if user is None:
                raise ValueError(f"unknown warehouse role {role!r}") from None
        return user, password.get_secret_value()

    @property
    def mlflow_uri(self) -> str:
        return self.mlflow_tracking_uri or f"http://127.0.0.1:{self.mlflow_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached). Tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
