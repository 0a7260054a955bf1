"""Actions out of a step (docs/connectors.md#actions-out): messages published to the brokers of
the project's connectors, and HTTP requests, both made by the host for in-process steps and for
steps in children alike, and each recorded in the run as an event."""
