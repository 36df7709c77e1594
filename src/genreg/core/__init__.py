"""Pure domain: canonical hashing, refs, artifact validation, manifests, metrics, lineage.

Nothing in this package imports typer, fastapi or sqlmodel.
"""
