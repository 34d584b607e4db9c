"""Local infrastructure the project starts by itself: today the native Apache Kafka broker.

See :mod:`inferwatch.infra.kafka_native` and ``infra/kafka/README.md``.
"""

from inferwatch.infra.kafka_native import (
    NativeCluster,
    NativeKafka,
    NativeKafkaError,
    SaslSslListener,
    free_port,
    repo_root,
)

__all__ = ["NativeCluster", "NativeKafka", "NativeKafkaError", "SaslSslListener", "free_port", "repo_root"]
