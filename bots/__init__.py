"""tierbot channels, message pipeline, CLI and the composition root."""
