"""Airflow DAG iot_agg_transform_weekly: the weekly agg models, built by orchestration.agg_dags."""

from orchestration.agg_dags import agg_transform_dag

iot_agg_transform_weekly_dag = agg_transform_dag("weekly")
