"""Security knowledge base: connectors' records in SQLite/FTS5 + a dense index, typed lookups,
hybrid search and an id validator. Importing this package stays light (no torch)."""

from secfoundry.kb.knowledge import KnowledgeBase, Status, default_path

__all__ = ["KnowledgeBase", "Status", "default_path"]
