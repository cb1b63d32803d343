"""Prefect flows: they orchestrate winnow's stages and hold no logic of their own."""
