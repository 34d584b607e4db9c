"""The stream processor: rolling metrics, drift, label-joined performance, LLM signals, embeddings,
lineage and segment localisation. The pure core is :mod:`inferwatch.processor.core`; the faust app
is :mod:`inferwatch.processor.app`."""

from inferwatch.processor.reference import ReferenceProfile, build_reference_profile
from inferwatch.processor.settings import ProcessorSettings

__all__ = ["ProcessorSettings", "ReferenceProfile", "build_reference_profile"]
