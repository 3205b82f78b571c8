"""The pytest plugin (entry point ``pytest11``): not built yet (its issue is open). Imports nothing heavy."""
