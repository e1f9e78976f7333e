"""Forecasting of IAQ 15 minutes ahead (DESIGN §6, docs/forecasting.md).

Domain package: imports only ``iot_core``. Modules: ``dataset`` (windows from stage.iaq_minutely),
``models`` (the candidates), ``bandit`` (UCB1 arithmetic), ``registry`` (MLflow), ``training``,
``forecasting`` (one cycle), ``schema`` (the ml tables), ``report`` (summaries and plots).
"""
