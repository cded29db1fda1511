"""MQTT link to central: topics, messages, signatures, plan bundles, spool, client."""
