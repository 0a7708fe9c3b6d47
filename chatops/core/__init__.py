"""The pure domain: requests, environments, lifecycle, errors and ports.

Nothing in here performs I/O or imports from the rest of the project.
"""
