"""The end-to-end demo: a simulated model fleet replayed through the whole platform (``inferwatch demo``)."""
