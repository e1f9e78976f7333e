{#- What each column name means across the analyst's schemas (stage, agg, curated, ml), for the
    database comments that DBeaver shows (issue 16: every table and column there has one).

    A model's own yml description wins (persist_docs writes it); the glossary fills in every
    column that has none, at the end of each dbt run (on-run-end), including the ml tables that
    the forecast code creates. One meaning per column name: the same name means the same thing
    in every table. tests/dbt_project/test_analyst_access.py fails on any column left without a
    comment, so a new column gets a description in its model's yml or here. -#}

{% macro column_glossary() -%}
  {{ return({
    '_ingested_at': 'When the platform captured the source document (MongoDB change event or snapshot time, UTC): the incremental cursor.',
    'abs_error_sum': 'Sum of the arms absolute forecast errors over the points settled so far.',
    'action': 'What happened to the device: INSTALLED, CALIBRATED, FIRMWARE_UPGRADED or DECOMMISSIONED.',
    'age': 'Age in years, as the user gave it.',
    'age_group': 'Age band of seed 001''s analysis (under 18, 18-24, ..., 65+, unknown).',
    'applied_at': 'When the curated build applied this consent state of the user.',
    'arm': 'The forecast model (bandit arm): the one the selection chose, or the one scored.',
    'bpm': 'Heart rate, beats per minute.',
    'building': 'Building where the device is installed.',
    'candidate': 'Kind of forecast model (persistence, ridge, lightgbm, mlp).',
    'chosen_at': 'When the bandit made the choice.',
    'confidence': 'Confidence the wearable reported for the sample.',
    'consent_minute': 'Start of the users research consent that the curated tables were built for (null: none).',
    'created_at': 'When the user or device was registered at the source.',
    'decommissioned_at': 'When the device was decommissioned (null: in service).',
    'description': 'What the measure is.',
    'device_count': 'Number of devices listed for the user.',
    'device_id': 'Device identifier (the devid of air-quality payloads).',
    'device_ids': 'The users devices when the consent state was applied.',
    'devices': 'Device forecasts settled into this score so far.',
    'devices_predicted': 'Devices that received a forecast in the cycle.',
    'devices_skipped': 'Devices left out of the cycle (reasons in skipped).',
    'diff_sq_sum': 'Sum over device forecasts of (persistence error - arm error) squared: the confidence of beating persistence.',
    'duration_ms': 'Length of the sleep session in milliseconds.',
    'end_ts': 'End of the sleep session (UTC).',
    'event_index': 'Position of the event in the device''s history (1 = first).',
    'event_ts': 'When the event happened (UTC).',
    'finished_at': 'When the cycle finished.',
    'floor': 'Floor where the device is installed.',
    'fold_days': 'The weekdays the walk-forward validation scored the model on.',
    'forecast': 'The 15 forecast values of the round, one per minute ahead.',
    'gender': 'Gender as the user gave it.',
    'height_cm': 'Height in centimetres.',
    'history_event_count': 'Number of events in the device''s install history.',
    'iaq': 'Indoor air-quality index (Bosch BME680 scale).',
    'installed_at': 'First installation of the device (UTC).',
    'is_active': 'Whether the device is in service (not decommissioned).',
    'is_current': 'Whether this model version is one of the bandit''s current arms.',
    'is_interpolated': 'True when the minute had no reading and the value was interpolated across a short gap.',
    'issue_minute': 'The minute the forecast cycle ran for (UTC).',
    'issued_at': 'When the forecast was made (time minus the horizon).',
    'kind': 'Kind of device: watch, phone or air_quality.',
    'last_calibrated_at': 'Last calibration of the device (UTC).',
    'last_firmware_upgrade_at': 'Last firmware upgrade of the device (UTC).',
    'latitude': 'Latitude of the device''s location (WGS84 degrees).',
    'location_description': 'Where the device is installed, in words.',
    'longitude': 'Longitude of the device''s location (WGS84 degrees).',
    'mac': 'Network (MAC) address of the device.',
    'mae_by_horizon': 'Validation mean absolute error per forecast horizon (JSON).',
    'mae_ratio': 'Model MAE divided by the persistence MAE (below 1: better than persistence).',
    'manufacturer_name': 'Manufacturer of the device.',
    'manufacturer_website': 'Website of the manufacturer.',
    'max_value': 'Largest valid value of the measure; larger readings are rejected.',
    'measure_name': 'Measure: iaq, temperature, humidity, pressure, voc, co2 or iaq_accuracy (units in stage.stg_sensor_measures); in ml.predictions iaq~h, the value predicted h minutes before time.',
    'min_value': 'Smallest valid value of the measure; smaller readings are rejected.',
    'model': 'Model of the device.',
    'model_mae': 'Mean absolute error of the chosen model once the actuals arrived.',
    'model_name': 'Forecast model that made the prediction.',
    'model_version': 'Registered MLflow version of the forecast model.',
    'n_points': 'Number of actual values the reward was computed from.',
    'note': 'Remark on the choice (e.g. why no reward).',
    'notes': 'Technician''s notes on the event.',
    'owner_user_id': 'User who owns the device (wearables; null for room sensors).',
    'params': 'Hyper-parameters the walk-forward validation chose.',
    'persistence_mae': 'Mean absolute error of the persistence forecast (the last value carried on) on the same data.',
    'points': 'Forecast values settled into this score so far.',
    'position': 'Position of the measure in the device payload''s readings list (1-based).',
    'raw_value': 'The value as it arrived, when it could not be read as a number or time.',
    'registered_model': 'Name of the model in the MLflow registry.',
    'reject_id': 'Identifier of the rejected row (source table, document and measure).',
    'reject_reason': 'Why the row was rejected (e.g. out_of_range, unparseable_ts, unknown_device).',
    'reward': 'Reward the bandit received for the choice (from the realised error).',
    'reward_sum': 'Sum of the arms rewards (its error against persistences) over the settled device forecasts.',
    'rewards_expired': 'Choices whose actuals never arrived within the settling window (not scored).',
    'rewards_settled': 'Earlier choices rewarded in the cycle.',
    'room': 'Room where the device is installed.',
    'rows_written': 'Prediction rows written by the cycle.',
    'run_id': 'MLflow run that trained the model.',
    'seconds': 'Time spent per step of the cycle (JSON).',
    'settled_at': 'When the reward was computed.',
    'share_with_friends_asof': 'Since when the user shares with friends (null: never agreed).',
    'share_with_public_asof': 'Since when the user shares publicly (null: never agreed).',
    'share_with_research_asof': 'Since when the user shares with research (null: never agreed); no data before it reaches curated.',
    'skipped': 'Devices left out and why (JSON).',
    'source_id': 'Identifier of the source document or sample.',
    'source_table': 'Raw table the rejected row came from.',
    'start_ts': 'Start of the sleep session (UTC).',
    'started_at': 'When the cycle started.',
    'steps': 'Steps counted.',
    'technician_id': 'Technician who did the work.',
    'time': 'Time of the reading or of the predicted value (UTC).',
    'train_windows': 'Training windows the model was fitted on.',
    'trained_at': 'When the model was trained.',
    'ucb_scores': 'UCB1 score of every arm at the choice (JSON).',
    'unit': 'Unit of the measure.',
    'user_id': 'User identifier.',
    'val_mae': 'Mean absolute error on the validation windows.',
    'val_rmse': 'Root mean squared error on the validation windows.',
    'val_windows': 'Validation windows the model was scored on.',
    'value': 'Value of the measure (units in stage.stg_sensor_measures).'
  }) }}
{%- endmacro %}

{#- on-run-end: comment every uncommented column of the analyst's schemas that the glossary knows. -#}
{% macro comment_undocumented_columns(schemas=('stage', 'agg', 'curated', 'ml')) -%}
  {%- if execute -%}
    {%- set glossary = column_glossary() -%}
    {%- set missing = run_query("""
        select pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), a.attname
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        join pg_catalog.pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname in ('""" ~ schemas | join("', '") ~ """') and c.relkind in ('r', 'v', 'm', 'p')
          and c.relname not like '%\\_\\_dbt\\_%' and pg_catalog.col_description(c.oid, a.attnum) is null
          and pg_catalog.pg_has_role(c.relowner, 'USAGE')""") -%}
    {%- for relation, column in missing.rows if column in glossary -%}
      {%- do run_query("comment on column " ~ relation ~ "." ~ adapter.quote(column) ~ " is "
                       ~ sql_literal(glossary[column])) -%}
    {%- endfor -%}
  {%- endif -%}
  select 1
{%- endmacro %}
