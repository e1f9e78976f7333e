-- The seven air-quality measures in payload order (docs/contracts.md §1), with units and the
-- physically plausible range used by the stage checks.
{{ config(materialized='table') }}
select measure_name, position, unit, min_value, max_value, description
from (values
    ('iaq',          1, 'index', 0::double precision,  500::double precision, 'Indoor air-quality index (Bosch BME680 scale)'),
    ('temperature',  2, '°C',   -40,    85,    'Air temperature'),
    ('humidity',     3, '%RH',    0,   100,    'Relative humidity'),
    ('pressure',     4, 'kPa',   30,   110,    'Barometric pressure'),
    ('voc',          5, 'ppm',    0,  1000,    'Volatile organic compounds (breath-VOC equivalent)'),
    ('co2',          6, 'ppm',    0, 10000,    'CO2 equivalent'),
    ('iaq_accuracy', 7, 'level',  0,     3,    'Calibration state of the IAQ estimate (0 = unreliable, 3 = high)')
) as m(measure_name, position, unit, min_value, max_value, description)
