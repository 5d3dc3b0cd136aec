"""What filters do: rule models and pure-Python reference semantics (no I/O)."""
