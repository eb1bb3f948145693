"""Ready-to-run worker specs (`rung worker rung.examples.digits`)."""
