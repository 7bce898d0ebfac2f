"""Curation: review (accept, reject, edit) and export with provenance."""
