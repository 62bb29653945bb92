"""tracetui: a terminal trace monitor for apps that write trace events as JSON lines."""

__version__ = "0.1.0"
