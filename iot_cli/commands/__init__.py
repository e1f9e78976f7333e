"""One module per `iot` sub-command."""
