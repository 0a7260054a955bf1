"""Connectors: broker connections (MQTT, AMQP) that start runs from messages (docs/connectors.md).

The broker client libraries are the optional extra `flowhost[brokers]`; they are imported only
when a connector connects.
"""
