"""Forecasting of IAQ 15 minutes ahead (DESIGN §6, docs/forecasting.md).

Domain package: imports only ``iot_core``. Modules: ``series`` (readings -> windows issued at
readings, the one preprocessing), ``dataset`` (observed minutes from stage.iaq_minutely),
``models`` (the candidates), ``tuning`` (walk-forward validation over weekdays), ``bandit`` (the
selection's arithmetic), ``registry`` (MLflow), ``training``, ``forecasting`` (one cycle),
``backtest`` (the walk-forward backtest of all of it), ``schema`` (the ml tables), ``report``
(summaries and plots).
"""
