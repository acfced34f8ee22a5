"""The MQTT wire contract between the gate and the server: pydantic models and topic names, no I/O."""
