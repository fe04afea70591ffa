"""Integrations with the libraries RAG services call models through; one instrumentor per library."""
