"""Routing, grouping into incidents and inhibition: which receiver hears of which alerts, together, and when."""
