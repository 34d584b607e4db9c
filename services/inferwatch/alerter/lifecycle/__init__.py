"""An alert's life (inactive, pending, firing, resolved), its identity, and the alerter's durable state."""
