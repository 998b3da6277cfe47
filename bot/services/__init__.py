"""Application services: they use the domain to decide and storage to keep; no nonebot here."""
