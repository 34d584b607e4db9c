"""Generators of test and benchmark traffic (scenarios with a known answer). Not used by any service:
the product packages never import it; tests, benchmarks and the micro-benchmarks of ``native`` do."""
