"""``taskrelay bench``: taskrelay and its baselines measured side by side in one run."""
