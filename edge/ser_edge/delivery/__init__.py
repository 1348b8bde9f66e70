"""Stage 5: events out: the JSON, the SQLite spool, MQTT with Home Assistant discovery."""
