"""Difficulty enhancement: rate items and rewrite the ones below a discipline's target mix harder."""
