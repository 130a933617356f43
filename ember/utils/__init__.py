"""Small shared utilities: printing tensors, atomic file writes."""
