"""The stream processor: rolling metrics, drift, label-joined performance, LLM signals, embeddings,
lineage and segment localisation. The pure core is :mod:`inferwatch.processor.core`; the faust app
is :mod:`inferwatch.processor.app`."""

from inferwatch.processor.config import ProcessorConfig
from inferwatch.processor.reference import ReferenceProfile, build_reference_profile

__all__ = ["ProcessorConfig", "ReferenceProfile", "build_reference_profile"]
