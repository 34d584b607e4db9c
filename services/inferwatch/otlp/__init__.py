"""OTLP in: an OTLP/HTTP traces receiver that turns model-call spans into ``prediction.v1`` events.

:mod:`~inferwatch.otlp.request_body` reads a request body (protobuf or JSON, gzip) into the official
OpenTelemetry protobuf classes, :mod:`~inferwatch.otlp.mapping` maps one span to an event under
the mapping configuration of :mod:`~inferwatch.otlp.config`, and :mod:`~inferwatch.otlp.receiver`
publishes through the SDK's shared transport and answers OTLP's partial-success semantics.
"""
