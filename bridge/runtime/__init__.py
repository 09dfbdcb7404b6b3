"""The daemon at run time: composition root, pump, housekeeping, links."""
