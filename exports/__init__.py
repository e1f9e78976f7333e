"""CSV exports of the sensor readings (seed 000's daily and last-N-days exports, DESIGN §5).

The warehouse is the source (``stage.stg_sensor_readings``), the output one wide CSV per
export: one row per device and minute, one column per measure. ``exports.sensor_csv`` holds
the query and the file layout; the API streams the same CSV over HTTP.
"""
