"""The stages one reading goes through: ingest, decode, normalize, line protocol, batch,
deliver (sinks, spool) and the dead-letter store."""
