"""Diffusion synthesis: one prompt per seed bundle, several new QA items back."""
