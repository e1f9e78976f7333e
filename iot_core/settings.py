"""The one place that reads configuration.

Values come from environment variables first, then the project's ``.env`` file (development
defaults). Nothing else in the project hard-codes a host, port, database or credential.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
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
    mongo_user: str = ""  # the application's user (readWrite on mongo_db); empty: no authentication
    mongo_password: SecretStr = SecretStr("")
    # administrator of the MongoDB server (creates the application user; never used by the platform)
    mongo_root_user: str = ""
    mongo_root_password: SecretStr = SecretStr("")
    # change history the server keeps for the extract's change streams (local mode): an extract
    # stopped for longer resumes with a snapshot of each collection
    mongo_oplog_hours: float = 168.0
    mongo_oplog_max_entries: int = 5_000_000

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
    # Airflow's internal servers (local mode binds them to 127.0.0.1): the task log servers of the
    # scheduler (LocalExecutor) and the triggerer, and the scheduler's optional health server
    airflow_worker_log_server_port: int = 8793
    airflow_trigger_log_server_port: int = 8794
    airflow_scheduler_health_port: int = 8974
    airflow_admin_user: str = "airflow"
    airflow_admin_password: SecretStr = SecretStr("")
    airflow_jwt_secret: SecretStr = SecretStr("")
    airflow_fernet_key: SecretStr = SecretStr("")
    airflow_dags_paused_at_creation: bool = True
    airflow_parallelism: int = 6
    # task slots of the `batch` pool (dbt model tasks, training, validation, exports, trips): at most
    # this many batch tasks run at once, so `airflow_parallelism - airflow_batch_slots` executor
    # slots always stay free for the hot path (pool `hot`: extract, stage, forecast, alerts)
    airflow_batch_slots: int = 3
    # "local" (LocalExecutor) or "celery" (CeleryExecutor: Redis and a worker per queue, hot and batch)
    airflow_executor: str = "local"
    # Celery mode: task processes of the hot worker and of the batch worker
    airflow_hot_worker_concurrency: int = 3
    airflow_batch_worker_concurrency: int = 3
    # Celery broker (local mode runs Debian's redis-server on 127.0.0.1 with this password)
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_password: SecretStr = SecretStr("")
    # iot_raw_extract: "@continuous" (the next run starts when one ends: freshest stage) or a cron
    # expression / preset; env EXTRACT_SCHEDULE (the older name IOT_EXTRACT_SCHEDULE still counts)
    extract_schedule: str = Field("@continuous",
                                  validation_alias=AliasChoices("extract_schedule", "iot_extract_schedule"))

    # MLflow
    mlflow_port: int = 5000
    mlflow_tracking_uri: str = ""  # empty: http://127.0.0.1:<mlflow_port>

    # API
    api_port: int = 8000
    # HMAC key of the API's NextTokens (empty: a random key per process; tokens then fail across
    # workers and restarts)
    api_token_secret: SecretStr = SecretStr("")
    # largest request body the API reads (a device payload is about 150 bytes); larger: 413
    api_max_body_bytes: int = 65_536

    # Dashboard (docs/dashboard.md): Streamlit, read-only analyst role
    dashboard_port: int = 8501
    dashboard_refresh_seconds: int = Field(60, ge=5)  # pages re-query this often (and cache as long)
    # the Fleet page calls a sensor silent when its newest reading is older than this
    dashboard_silent_minutes: int = Field(10, gt=0)

    # Data
    day_timezone: str = "UTC"
    # zone of device clocks that send times without a UTC offset (IANA name, e.g. Europe/London);
    # empty: such times are refused (docs/contracts.md)
    device_timezone: str = ""
    training_timezone: str = "UTC"
    # forecasting (docs/forecasting.md): days of history a training fits on; readings at most this
    # far apart are interpolated into a model input (sensors that report every 5-15 minutes); the
    # selection weighs the scored forecasts of the last this many rounds; a training fits on at
    # most this many windows
    forecast_training_days: float = 14
    forecast_max_gap_minutes: int = 30
    forecast_selection_window_rounds: int = 480
    forecast_max_train_windows: int = 200_000
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
    trips_s3_concurrency: int = 32  # S3 requests in flight at once (listings and object fetches)
    trips_s3_cache_mb: int = 256  # memory for S3 objects fetched ahead of DuckDB's reads

    # Privacy (docs/privacy.md): the key of the pseudonymous research ids in `curated` and of the
    # erasure tombstones. Set once per deployment; keep it secret (it re-identifies research ids).
    pseudonym_secret: SecretStr = SecretStr("")

    # Retention per warehouse layer, in days; None (empty in .env) keeps the layer forever
    # (docs/warehouse.md, retention). raw: the readings collections by capture time; stage: the
    # time-series stage models; predictions: ml.predictions; agg: the time-series aggregates.
    # TimescaleDB applies them as policies, plain PostgreSQL as the daily iot_retention DAG.
    # stage and agg keep at least 32 days: an aggregate period (up to a month) that started before
    # the horizon must be over, since it is final from then on (docs/warehouse.md, retention)
    retention_raw_days: int | None = Field(None, gt=0)
    retention_stage_days: int | None = Field(None, ge=32)
    retention_predictions_days: int | None = Field(30, gt=0)
    retention_agg_days: int | None = Field(None, ge=32)
    # ml.predictions chunks older than this are compressed (TimescaleDB only)
    compress_predictions_after_days: int | None = Field(1, gt=0)

    @field_validator("retention_raw_days", "retention_stage_days", "retention_predictions_days",
                     "retention_agg_days", "compress_predictions_after_days", mode="before")
    @classmethod
    def _empty_means_keep(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    # Alerts (docs/alerts.md): the rule file (empty: alerts/rules.yml), the webhook receivers
    # ("name=url" or "url", comma-separated; a URL ending in /api/v2/alerts gets Alertmanager's API
    # format, any other the Alertmanager webhook format) and the delivery retries
    alert_rules_file: str = ""
    alert_webhooks: str = ""
    alert_delivery_attempts: int = 12
    alert_delivery_backoff_seconds: float = 5.0   # first retry; doubles per attempt
    alert_delivery_backoff_max_seconds: float = 600.0
    alert_delivery_timeout_seconds: float = 10.0
    # a rule x device evaluated for the first time looks back this far
    alert_lookback_minutes: int = 60
    # links in notifications (generatorURL / externalURL); empty: http://127.0.0.1:<api_port>
    alert_external_url: str = ""

    # Local state (local mode only): data directories, pids and logs
    local_dir: Path = PROJECT_ROOT / ".local"
    # local mode: a service that exits is restarted by supervisord; after this many failed starts
    # in a row (each waits one second longer than the one before) it is left stopped (FATAL)
    stack_start_retries: int = 20

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
