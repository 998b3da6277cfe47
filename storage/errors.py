"""What the storage layer raises when the database itself fails (not a statement)."""


class DatabaseUnavailable(Exception):
    """The database cannot be used right now (locked by another writer, server down or
    unreachable). The transaction was rolled back, unless the connection broke during COMMIT;
    the next one reconnects by itself. ``str(error)`` is the driver's reason, without the SQL
    or its parameters (they may hold personal numbers)."""
