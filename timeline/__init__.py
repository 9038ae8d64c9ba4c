"""timeline: an event-sourced, bitemporal timeline database with its own query language."""
__version__ = "0.1.0"
