"""chatops: hand coding work to an agent from where the work is discussed."""

__version__ = "0.1.0"
