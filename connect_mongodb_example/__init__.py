"""Reference stateful events extension for CloudBlue Connect."""
