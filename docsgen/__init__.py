"""Generators of the documentation site's files under docs/: tables from the code, pictures from real runs."""
