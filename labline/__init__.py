"""labline: notebook-driven ML workflows, from the classroom to production."""

__version__ = "0.1.0"
