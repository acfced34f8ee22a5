"""The service layer: one function per use case, each one unit of work.

HTTP, the CLI (and later MQTT ingest) call these and nothing below them. A service loads what
the rule needs, asks the domain, writes the result and an audit entry, all in one transaction.
"""
