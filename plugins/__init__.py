"""nonebot2 plugins: they talk; the services decide and storage keeps."""
