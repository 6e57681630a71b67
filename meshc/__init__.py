"""meshc: a declarative compiler and validator for Agentic Meshes on Redis Streams."""

__version__ = "0.1.0"
