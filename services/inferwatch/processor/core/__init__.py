"""The processor's pure, vectorised core: no Kafka, no faust. Raw event bytes in, snapshots out."""
