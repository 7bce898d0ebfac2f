"""Talking to OpenAI-compatible model endpoints: settings, the client, its transport and ledger."""
